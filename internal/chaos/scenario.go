package chaos

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shopmesh/shopmesh/internal/wait"
)

// scenario is one fault schedule. Its faults run while the workload runs
// and must return by themselves (every loop is bounded in count, every wait
// in time); heal then undoes whatever is left.
type scenario struct {
	name string
	doc  string
	// private: the scenario restarts RabbitMQ or PostgreSQL, so it runs on
	// private servers, never on the shared platform.
	private bool
	weights map[Path]int
	faults  func(ctx context.Context, f *faultRun) error
	// afterDrain, when set, runs once after the first drain; the system is
	// drained again before the ledger check.
	afterDrain func(ctx context.Context, f *faultRun) error
}

// Scenarios returns the names of every scenario, in the order `all` runs
// them, and "mixed".
func Scenarios() []string {
	var out []string
	for _, s := range catalogue() {
		out = append(out, s.name)
	}
	return out
}

// Describe returns a scenario's one-line description.
func Describe(name string) string {
	for _, s := range catalogue() {
		if s.name == name {
			return s.doc
		}
	}
	return ""
}

// repeat runs fault n times with a random gap before each, stopping early
// when ctx ends.
func (f *faultRun) repeat(ctx context.Context, n int, fault func(i int) error) error {
	var errs []error
	for i := range n {
		if wait.Sleep(ctx, f.d(300*time.Millisecond, 2*time.Second)) != nil {
			break
		}
		if err := fault(i); err != nil && ctx.Err() == nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func catalogue() []scenario {
	return []scenario{
		{
			name: "relay-kill-after-confirm",
			doc:  "a producer is SIGKILLed after its relay got the broker's confirms and before it wrote its cursor",
			faults: func(ctx context.Context, f *faultRun) error {
				return f.repeat(ctx, f.n(3, 10), func(int) error { return f.relayKillAfterConfirm(ctx, f.pick(f.producers())) })
			},
		},
		{
			name: "relay-kill-mid-batch",
			doc:  "a producer is SIGKILLed between two publishes of one relay batch (database latency makes batches)",
			faults: func(ctx context.Context, f *faultRun) error {
				for _, svc := range f.producers() {
					if err := f.latency(svc, "postgres", 30); err != nil {
						return err
					}
				}
				return f.repeat(ctx, f.n(3, 10), func(int) error { return f.relayKillMidBatch(ctx, f.pick(f.batchProducers())) })
			},
		},
		{
			name: "consumer-kill-after-commit",
			doc:  "a consumer is SIGKILLed after its transaction committed and before it acknowledged the message",
			faults: func(ctx context.Context, f *faultRun) error {
				return f.repeat(ctx, f.n(3, 10), func(int) error { return f.consumerKill(ctx, f.pick(f.sagaServices()), true) })
			},
		},
		{
			name: "consumer-kill-before-commit",
			doc:  "a consumer is SIGKILLed with its transaction open, its COMMIT dropped",
			faults: func(ctx context.Context, f *faultRun) error {
				return f.repeat(ctx, f.n(3, 10), func(int) error { return f.consumerKill(ctx, f.pick(f.sagaServices()), false) })
			},
		},
		{
			name:    "rabbitmq-restart",
			doc:     "the (private) RabbitMQ node is SIGKILLed with unconfirmed publishes in flight and started again",
			private: true,
			faults: func(ctx context.Context, f *faultRun) error {
				return f.repeat(ctx, f.n(1, 3), func(int) error { return f.restartBroker(ctx, f.d(500*time.Millisecond, 4*time.Second)) })
			},
		},
		{
			name:    "postgres-restart",
			doc:     "the (private) PostgreSQL cluster is SIGKILLed during a COMMIT and started again (crash recovery)",
			private: true,
			faults: func(ctx context.Context, f *faultRun) error {
				return f.repeat(ctx, f.n(1, 3), func(int) error { return f.restartPostgres(ctx, f.d(500*time.Millisecond, 4*time.Second)) })
			},
		},
		{
			name: "commit-connection-lost",
			doc:  "database connections die at COMMIT (before it arrives, or after with the answer lost), plus reset_peer and limit_data cuts",
			faults: func(ctx context.Context, f *faultRun) error {
				var errs []error
				for i, svc := range f.running("order", "inventory", "payment", "shipping", "invoice", "cart") {
					errs = append(errs, f.commitCut(ctx, svc, i%2 == 0, f.n(2, 6), 2))
				}
				svc := f.pick(f.sagaServices())
				errs = append(errs, f.resetPeer(ctx, svc, "postgres", f.d(200*time.Millisecond, time.Second)))
				svc = f.pick(f.sagaServices())
				errs = append(errs, f.limitData(ctx, svc, "postgres", 2000+f.rng.IntN(6000), f.d(time.Second, 3*time.Second)))
				return errors.Join(errs...)
			},
		},
		{
			name: "relay-blackhole",
			doc:  "everything a producer's relay sends to the broker is dropped for a while, then the link heals",
			faults: func(ctx context.Context, f *faultRun) error {
				return f.repeat(ctx, f.n(2, 6), func(int) error {
					return f.blackholeRelay(ctx, f.pick(f.producers()), f.d(2*time.Second, 8*time.Second))
				})
			},
		},
		{
			name: "consumer-partition",
			doc:  "a consuming service is partitioned from the broker (both directions), then the partition heals",
			faults: func(ctx context.Context, f *faultRun) error {
				return f.repeat(ctx, f.n(2, 6), func(int) error {
					return f.partition(ctx, f.pick(f.sagaServices()), f.d(2*time.Second, 8*time.Second))
				})
			},
		},
		{
			name: "duplicate-all",
			doc:  "every relay's cursor is rewound, during the workload and after it drained: every message is delivered again",
			faults: func(ctx context.Context, f *faultRun) error {
				if err := wait.Sleep(ctx, f.d(time.Second, 4*time.Second)); err != nil {
					return nil
				}
				return f.duplicateAll(ctx)
			},
			afterDrain: func(ctx context.Context, f *faultRun) error { return f.duplicateAll(ctx) },
		},
		{
			name:    "reorder",
			doc:     "payment's and shipping's events are held back past the saga's payment timeout, so replies arrive out of order",
			weights: map[Path]int{PathDelivered: 3, PathUndeliverable: 1, PathDeclined: 1, PathCancelConfirmed: 1, PathTimeout: 1},
			faults: func(ctx context.Context, f *faultRun) error {
				var errs []error
				if f.s.has("payment") {
					errs = append(errs, f.blackholeRelay(ctx, "payment", f.s.cfg.PaymentTimeout+2*time.Second))
				}
				if f.s.has("shipping") {
					errs = append(errs, f.blackholeRelay(ctx, "shipping", f.d(2*time.Second, 5*time.Second)))
				}
				return errors.Join(errs...)
			},
		},
		{
			name: "poison",
			doc:  "malformed and unknown-version messages are published onto services' queues; each must be dead-lettered, nothing else",
			faults: func(ctx context.Context, f *faultRun) error {
				return f.repeat(ctx, 1, func(int) error {
					var errs []error
					for _, svc := range f.running("order", "inventory", "payment", "invoice") {
						errs = append(errs, f.poison(ctx, svc))
					}
					return errors.Join(errs...)
				})
			},
		},
		{
			name: "slow-consumer",
			doc:  "a consumer is paused with SIGSTOP while messages pile up, then continued",
			faults: func(ctx context.Context, f *faultRun) error {
				return f.repeat(ctx, f.n(2, 6), func(int) error {
					// Long pauses outlast the AMQP heartbeat (10s): the broker
					// closes the paused consumer's connection and requeues.
					d := f.d(2*time.Second, 10*time.Second)
					if !f.short {
						d = f.d(5*time.Second, 35*time.Second)
					}
					return f.pause(ctx, f.pick(f.sagaServices()), d)
				})
			},
		},
		{
			name: "replicas",
			doc:  "two processes of a service consume the same queue; the active one is killed and the other takes over",
			faults: func(ctx context.Context, f *faultRun) error {
				var errs []error
				for _, svc := range f.running("order", "inventory") {
					errs = append(errs, f.replicaTakeover(ctx, svc))
				}
				return errors.Join(errs...)
			},
		},
		{
			name:    "compensation-interrupted",
			doc:     "inventory, payment or invoice is killed in the middle of a cancelled order's compensations",
			weights: map[Path]int{PathUndeliverable: 4, PathCancelConfirmed: 2, PathDelivered: 1},
			faults: func(ctx context.Context, f *faultRun) error {
				steps := []struct{ svc, event string }{
					{"inventory", "order.cancelled.v1"}, {"payment", "order.refund_requested.v1"}, {"invoice", "payment.refunded.v1"},
				}
				return f.repeat(ctx, f.n(3, 9), func(i int) error {
					st := steps[i%len(steps)]
					if !f.s.has(st.svc) {
						return nil
					}
					return f.compensationKill(ctx, st.svc, st.event, (i/len(steps))%2 == 0)
				})
			},
		},
		{
			name:    "mixed",
			doc:     "faults of every kind, drawn at random from the seed",
			private: true,
			faults:  mixedFaults,
		},
	}
}

// mixedFaults draws each fault from the seed.
func mixedFaults(ctx context.Context, f *faultRun) error {
	kinds := []func() error{
		func() error { return f.relayKillAfterConfirm(ctx, f.pick(f.producers())) },
		func() error { return f.relayKillMidBatch(ctx, f.pick(f.batchProducers())) },
		func() error { return f.consumerKill(ctx, f.pick(f.sagaServices()), true) },
		func() error { return f.consumerKill(ctx, f.pick(f.sagaServices()), false) },
		func() error { return f.restartBroker(ctx, f.d(500*time.Millisecond, 3*time.Second)) },
		func() error { return f.restartPostgres(ctx, f.d(500*time.Millisecond, 3*time.Second)) },
		func() error { return f.commitCut(ctx, f.pick(f.sagaServices()), f.rng.IntN(2) == 0, 2, 2) },
		func() error { return f.blackholeRelay(ctx, f.pick(f.producers()), f.d(time.Second, 5*time.Second)) },
		func() error { return f.partition(ctx, f.pick(f.sagaServices()), f.d(time.Second, 5*time.Second)) },
		func() error { return f.pause(ctx, f.pick(f.sagaServices()), f.d(time.Second, 6*time.Second)) },
		func() error { return f.poison(ctx, f.pick(f.running("order", "inventory", "payment"))) },
		func() error { return f.duplicateAll(ctx) },
		func() error { return f.plainKill(ctx, f.pick(f.s.services)) },
		func() error {
			return f.resetPeer(ctx, f.pick(f.sagaServices()), "amqp", f.d(200*time.Millisecond, time.Second))
		},
	}
	return f.repeat(ctx, f.n(5, 20), func(int) error { return kinds[f.rng.IntN(len(kinds))]() })
}

// selectScenarios resolves names ("all" for every one) against the
// catalogue, keeping the catalogue's order.
func selectScenarios(names []string) ([]scenario, error) {
	all := catalogue()
	if len(names) == 0 {
		return all, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		for _, part := range strings.Split(n, ",") {
			if part = strings.TrimSpace(part); part != "" {
				want[part] = true
			}
		}
	}
	if want["all"] {
		return all, nil
	}
	var out []scenario
	for _, s := range all {
		if want[s.name] {
			out = append(out, s)
			delete(want, s.name)
		}
	}
	if len(want) > 0 {
		var unknown []string
		for n := range want {
			unknown = append(unknown, n)
		}
		sort.Strings(unknown)
		return nil, fmt.Errorf("unknown scenario %s (known: all, %s)", strings.Join(unknown, ", "), strings.Join(Scenarios(), ", "))
	}
	return out, nil
}
