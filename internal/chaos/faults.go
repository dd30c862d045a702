package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/wait"
	"github.com/shopmesh/shopmesh/outbox"
)

// faultRun is what a scenario's fault schedule works with. Every fault is
// bounded in time and logged; nothing it does outlives heal.
type faultRun struct {
	s     *system
	rng   *rand.Rand
	short bool
	// wait bounds how long a fault waits for the protocol moment it targets
	// before it falls back to acting at once.
	wait time.Duration

	mu           sync.Mutex
	log          []string
	expectedDead map[string][]string
	// targeted counts the protocol moments faults waited for, missed those
	// that did not come in time (the fault then acted at once, or not).
	targeted, missed int
}

func (f *faultRun) record(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	f.mu.Lock()
	f.log = append(f.log, msg)
	f.mu.Unlock()
	f.s.logger.Info("fault", "what", msg)
}

func (f *faultRun) faults() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

// n picks the short or long count.
func (f *faultRun) n(short, long int) int {
	if f.short {
		return short
	}
	return long
}

// d picks a duration between lo and hi (short runs use the lower half).
func (f *faultRun) d(lo, hi time.Duration) time.Duration {
	if f.short {
		hi = lo + (hi-lo)/2
	}
	return lo + time.Duration(f.rng.Int64N(int64(hi-lo)+1))
}

func (f *faultRun) pick(from []string) string { return from[f.rng.IntN(len(from))] }

// running filters services to those the system runs.
func (f *faultRun) running(svcs ...string) []string {
	var out []string
	for _, s := range svcs {
		if f.s.has(s) {
			out = append(out, s)
		}
	}
	return out
}

// sagaServices take part in the order saga; producers among them publish
// what the saga waits for.
func (f *faultRun) sagaServices() []string {
	return f.running("order", "inventory", "payment", "shipping", "invoice")
}

func (f *faultRun) producers() []string {
	return f.running("order", "inventory", "payment", "shipping", "cart")
}

// batchProducers are the producers whose relays send several events at
// once as a rule: inventory publishes a reservation's outcome and every
// product's new stock level in one transaction, and the order service
// publishes at every step of every checkout. The others publish one event
// at a time, far apart in a short run (a cart on add and checkout), so a
// fault waiting for the middle of one of their batches can wait in vain.
func (f *faultRun) batchProducers() []string {
	return f.running("order", "inventory")
}

// awaitTrigger waits until t acted, ctx ended or the wait passed; it
// reports whether t acted, and counts the moment t waited for as targeted
// and, when it did not come, missed.
func (f *faultRun) awaitTrigger(ctx context.Context, t *trigger) bool {
	hit := f.awaitCondition(ctx, t)
	f.mu.Lock()
	f.targeted++
	if !hit {
		f.missed++
	}
	f.mu.Unlock()
	return hit
}

// awaitCondition is awaitTrigger for a trigger that waits for a condition
// of the workload (a compensation being delivered), not for the moment a
// fault acts at: it counts nothing.
func (f *faultRun) awaitCondition(ctx context.Context, t *trigger) bool {
	timer := time.NewTimer(f.wait)
	defer timer.Stop()
	select {
	case <-t.done:
	case <-timer.C:
	case <-ctx.Done():
	}
	t.disarm()
	return t.Fired() > 0
}

// moments reports how many protocol moments faults waited for and how
// many of them did not come.
func (f *faultRun) moments() (targeted, missed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.targeted, f.missed
}

// restartAfterKill waits for a killed process to be gone and starts it.
func (f *faultRun) restartAfterKill(ctx context.Context, p *process) error {
	select {
	case <-p.exited():
	case <-time.After(30 * time.Second):
		p.kill()
	}
	if err := p.start(); err != nil {
		return err
	}
	return f.s.waitProcess(ctx, p)
}

// killAtPG SIGKILLs svc's process at the first PostgreSQL event match
// takes on its link, with the chunk handled as action says; without one in
// time it kills at once. Then it restarts the process.
func (f *faultRun) killAtPG(ctx context.Context, svc, what string, action chunkAction, match func(pgEvent) bool) error {
	p := f.s.procs.get(svc)
	t := newTrigger(action, 1, 1, func(ev any) bool { e, ok := ev.(pgEvent); return ok && match(e) }, p.killNow)
	f.s.proxies.pg[svc].ctl.arm(t)
	if f.awaitTrigger(ctx, t) {
		f.record("SIGKILL %s %s", svc, what)
	} else {
		p.killNow()
		f.record("SIGKILL %s at a random point (the moment targeted, %s, did not come within %s)", svc, what, f.wait)
	}
	return f.restartAfterKill(ctx, p)
}

// killAtAMQP is killAtPG on svc's broker link.
func (f *faultRun) killAtAMQP(ctx context.Context, svc, what string, action chunkAction, match func(amqpEvent) bool) error {
	p := f.s.procs.get(svc)
	t := newTrigger(action, 1, 1, func(ev any) bool { e, ok := ev.(amqpEvent); return ok && match(e) }, p.killNow)
	f.s.proxies.amqp[svc].ctl.arm(t)
	if f.awaitTrigger(ctx, t) {
		f.record("SIGKILL %s %s", svc, what)
	} else {
		p.killNow()
		f.record("SIGKILL %s at a random point (the moment targeted, %s, did not come within %s)", svc, what, f.wait)
	}
	return f.restartAfterKill(ctx, p)
}

// relayKillAfterConfirm: the relay got every confirm of a batch and is
// about to write its cursor; it dies instead. The batch is published again.
func (f *faultRun) relayKillAfterConfirm(ctx context.Context, svc string) error {
	return f.killAtPG(ctx, svc, "after its relay's confirms, before the cursor write", fireThenDropClose,
		func(e pgEvent) bool { return e.kind == pgCursorWrite })
}

// relayKillMidBatch: the relay dies between two publishes of one batch:
// what it wrote so far reaches the broker unconfirmed, the rest never.
func (f *faultRun) relayKillMidBatch(ctx context.Context, svc string) error {
	return f.killAtAMQP(ctx, svc, "in the middle of a relay batch (publishes sent, confirms pending)", fireThenForward,
		func(e amqpEvent) bool { return e.kind == evPublish && e.burst })
}

// consumerKill: a consumer's transaction reaches COMMIT; the process dies
// and the COMMIT goes through (after: applied, never acknowledged) or is
// dropped with the connection (before: never applied).
func (f *faultRun) consumerKill(ctx context.Context, svc string, afterCommit bool) error {
	if afterCommit {
		return f.killAtPG(ctx, svc, "after a consumer's COMMIT reached the database, before the ack", fireThenForward,
			func(e pgEvent) bool { return e.kind == pgCommit && e.consumerTx })
	}
	return f.killAtPG(ctx, svc, "before a consumer's COMMIT reached the database", fireThenDropClose,
		func(e pgEvent) bool { return e.kind == pgCommit && e.consumerTx })
}

// plainKill SIGKILLs and restarts a process at an arbitrary moment.
func (f *faultRun) plainKill(ctx context.Context, svc string) error {
	p := f.s.procs.get(svc)
	p.killNow()
	f.record("SIGKILL %s", svc)
	return f.restartAfterKill(ctx, p)
}

// pause stops a process with SIGSTOP for d, then SIGCONT.
func (f *faultRun) pause(ctx context.Context, svc string, d time.Duration) error {
	p := f.s.procs.get(svc)
	if err := p.pause(); err != nil {
		return err
	}
	f.record("SIGSTOP %s for %s", svc, d.Round(time.Millisecond))
	err := wait.Sleep(ctx, d)
	if rerr := p.resume(); rerr != nil {
		return rerr
	}
	return err
}

// partition cuts svc off the broker (both directions dropped) for d; the
// connections are closed when it heals.
func (f *faultRun) partition(ctx context.Context, svc string, d time.Duration) error {
	l := f.s.proxies.amqp[svc]
	if err := l.stockToxic("timeout", []string{"upstream", "downstream"}, map[string]any{"timeout": 0}); err != nil {
		return err
	}
	f.record("partition %s from the broker for %s (toxiproxy timeout, both ways)", svc, d.Round(time.Millisecond))
	err := wait.Sleep(ctx, d)
	l.heal(context.WithoutCancel(ctx))
	return err
}

// blackholeRelay drops everything svc's relay sends to the broker for d
// (its consumer's connection is untouched), then closes the relay's
// connection so that it reconnects.
func (f *faultRun) blackholeRelay(ctx context.Context, svc string, d time.Duration) error {
	l := f.s.proxies.amqp[svc]
	l.ctl.setBlackhole(roleRelay)
	f.record("blackhole %s's relay -> broker for %s", svc, d.Round(time.Millisecond))
	err := wait.Sleep(ctx, d)
	l.ctl.setBlackhole("")
	return err
}

// latency delays svc's traffic to a dependency until heal.
func (f *faultRun) latency(svc, dep string, ms int) error {
	l := f.proxyOf(svc, dep)
	if err := l.stockToxic("latency", []string{"upstream"}, map[string]any{"latency": ms, "jitter": ms / 4}); err != nil {
		return err
	}
	f.record("latency %dms on %s -> %s", ms, svc, dep)
	return nil
}

func (f *faultRun) proxyOf(svc, dep string) *linkProxy {
	if dep == "postgres" {
		return f.s.proxies.pg[svc]
	}
	return f.s.proxies.amqp[svc]
}

// resetPeer resets every connection of svc to dep that sends within d.
func (f *faultRun) resetPeer(ctx context.Context, svc, dep string, d time.Duration) error {
	l := f.proxyOf(svc, dep)
	if err := l.stockToxic("reset_peer", []string{"upstream"}, map[string]any{"timeout": 0}); err != nil {
		return err
	}
	f.record("reset_peer on %s -> %s for %s", svc, dep, d.Round(time.Millisecond))
	err := wait.Sleep(ctx, d)
	l.heal(context.WithoutCancel(ctx))
	return err
}

// limitData closes each connection of svc to dep after it sent n more
// bytes, for d: connections die mid-statement, some mid-COMMIT.
func (f *faultRun) limitData(ctx context.Context, svc, dep string, n int, d time.Duration) error {
	l := f.proxyOf(svc, dep)
	if err := l.stockToxic("limit_data", []string{"upstream"}, map[string]any{"bytes": n}); err != nil {
		return err
	}
	f.record("limit_data %d bytes on %s -> %s for %s", n, svc, dep, d.Round(time.Millisecond))
	err := wait.Sleep(ctx, d)
	l.heal(context.WithoutCancel(ctx))
	return err
}

// commitCut loses the connection at COMMIT: before (the COMMIT never
// arrives: rolled back) or after (it arrives, the answer is lost: committed
// but the service saw an error), on every every-th COMMIT of svc's link, up
// to budget times. The process lives on.
func (f *faultRun) commitCut(ctx context.Context, svc string, after bool, budget, every int) error {
	action, what := fireThenDropClose, "before"
	if after {
		action, what = forwardThenClose, "after"
	}
	t := newTrigger(action, budget, every, func(ev any) bool { e, ok := ev.(pgEvent); return ok && e.kind == pgCommit }, nil)
	f.s.proxies.pg[svc].ctl.arm(t)
	f.awaitTrigger(ctx, t)
	f.record("connection of %s lost %s COMMIT reached the database, %d times", svc, what, t.Fired())
	return nil
}

// restartBroker SIGKILLs the private RabbitMQ node just after a relay sent
// a publish (unconfirmed publishes in flight), waits, and starts it again.
func (f *faultRun) restartBroker(ctx context.Context, down time.Duration) error {
	rb := f.s.infra.Rabbit
	if rb == nil {
		return fmt.Errorf("rabbitmq restart needs a private node")
	}
	kill := rb.KillNow
	t := newTrigger(forwardThenFire, 1, 1, func(ev any) bool { e, ok := ev.(amqpEvent); return ok && e.kind == evPublish }, kill)
	for _, l := range f.s.proxies.amqp {
		l.ctl.arm(t)
	}
	f.s.brokerMu.Lock()
	defer f.s.brokerMu.Unlock()
	if f.awaitTrigger(ctx, t) {
		f.record("SIGKILL RabbitMQ with a publish in flight, down for %s", down.Round(time.Millisecond))
	} else {
		kill()
		f.record("SIGKILL RabbitMQ (no publish within %s), down for %s", f.wait, down.Round(time.Millisecond))
	}
	rb.Kill() // waits until it is gone
	err := wait.Sleep(ctx, down)
	if serr := rb.Start(context.WithoutCancel(ctx)); serr != nil { // back up even when the run ends
		return serr
	}
	return err
}

// restartPostgres SIGKILLs the private PostgreSQL cluster at a consumer's
// COMMIT, waits, and starts it again (crash recovery).
func (f *faultRun) restartPostgres(ctx context.Context, down time.Duration) error {
	pg := f.s.infra.PG
	if pg == nil {
		return fmt.Errorf("postgres restart needs a private cluster")
	}
	kill := pg.KillNow
	t := newTrigger(fireThenForward, 1, 1, func(ev any) bool { e, ok := ev.(pgEvent); return ok && e.kind == pgCommit }, kill)
	for _, l := range f.s.proxies.pg {
		l.ctl.arm(t)
	}
	f.s.brokerMu.Lock()
	defer f.s.brokerMu.Unlock()
	if f.awaitTrigger(ctx, t) {
		f.record("SIGKILL PostgreSQL during a COMMIT, down for %s", down.Round(time.Millisecond))
	} else {
		kill()
		f.record("SIGKILL PostgreSQL (no COMMIT within %s), down for %s", f.wait, down.Round(time.Millisecond))
	}
	pg.Kill()
	err := wait.Sleep(ctx, down)
	if serr := pg.Start(context.WithoutCancel(ctx)); serr != nil {
		return serr
	}
	return err
}

// duplicateAll rewinds every relay's cursor to the start of its outbox, so
// every event ever published is published again: each consumer receives
// every message a second time.
func (f *faultRun) duplicateAll(ctx context.Context) error {
	var total int64
	for _, svc := range f.s.services {
		n, err := outbox.RewindRelay(ctx, f.s.pools[svc], time.Time{})
		if err != nil {
			return fmt.Errorf("rewind %s relay: %w", svc, err)
		}
		total += n
	}
	f.record("rewound every relay's cursor: %d events published again", total)
	return nil
}

// poison publishes three messages no consumer can apply straight onto
// svc's queue: an unknown version of a type, a handled type with a
// malformed payload, and a message without a type. Each must end in svc's
// dead letters.
func (f *faultRun) poison(ctx context.Context, svc string) error {
	var handled string
	for _, t := range contracts.Registry() {
		if slices.Contains(t.Consumers, svc) {
			handled = t.Name
			break
		}
	}
	if handled == "" {
		return fmt.Errorf("%s consumes nothing", svc)
	}
	producer, _ := outbox.ProducerOf(handled)
	unknown := strings.TrimSuffix(handled, "v1") + "v99"
	conn, err := amqp.DialConfig(f.s.infra.AMQPAdmin, amqp.Config{Dial: amqp.DefaultDial(outbox.HandshakeTimeout)})
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := ch.Confirm(false); err != nil {
		return err
	}
	queue := outbox.QueueName(svc, "inbox")
	msgs := []struct {
		typ  string
		body string
	}{
		{unknown, `{"order_id":"00000000-0000-0000-0000-000000000000"}`},
		{handled, `{"order_id": 12, "truncated`},
		{"", `{}`},
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, m := range msgs {
		id := outbox.NewID()
		headers := amqp.Table{outbox.HeaderID: id, outbox.HeaderSource: producer, outbox.HeaderAggregateID: id,
			outbox.HeaderOccurredAt: time.Now().UTC().Format(time.RFC3339Nano)}
		if m.typ != "" {
			headers[outbox.HeaderType] = m.typ
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, amqp.Publishing{
			Headers: headers, MessageId: id, Type: m.typ, ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: []byte(m.body),
		})
		if err != nil {
			return err
		}
		if ok, err := dc.WaitContext(ctx); err != nil || !ok {
			return fmt.Errorf("poison not confirmed: %v", err)
		}
		f.mu.Lock()
		f.expectedDead[svc] = append(f.expectedDead[svc], id)
		f.mu.Unlock()
	}
	f.record("published 3 poison messages onto %s (%s, malformed %s, no type)", queue, unknown, handled)
	return nil
}

// replicaTakeover runs a second process of svc on the same queue (it
// stands by: single active consumer), kills the first so the second takes
// over, and starts the first again. The replica runs until heal.
func (f *faultRun) replicaTakeover(ctx context.Context, svc string) error {
	r, err := f.s.startReplica(ctx, svc)
	if err != nil {
		return err
	}
	f.record("second process %s of %s on the same queue", r.name, svc)
	if err := wait.Sleep(ctx, f.d(time.Second, 3*time.Second)); err != nil {
		return err
	}
	return f.plainKill(ctx, svc)
}

// compensationKill waits for svc to be handed a compensation (the event
// type given), then kills it at its next consumer COMMIT: after it (the
// compensation applied, its ack lost) or before (not applied).
func (f *faultRun) compensationKill(ctx context.Context, svc, eventType string, afterCommit bool) error {
	p := f.s.procs.get(svc)
	action, when := fireThenDropClose, "before"
	if afterCommit {
		action, when = fireThenForward, "after"
	}
	commit := newTrigger(action, 1, 1, func(ev any) bool { e, ok := ev.(pgEvent); return ok && e.kind == pgCommit && e.consumerTx }, p.killNow)
	armed := newTrigger(forwardThenFire, 1, 1, func(ev any) bool {
		e, ok := ev.(amqpEvent)
		return ok && e.kind == evDeliver && e.routingKey == eventType
	}, func() { f.s.proxies.pg[svc].ctl.arm(commit) })
	f.s.proxies.amqp[svc].ctl.arm(armed)
	got := f.awaitCondition(ctx, armed)
	if got && f.awaitTrigger(ctx, commit) {
		f.record("SIGKILL %s %s the COMMIT of a compensation (%s)", svc, when, eventType)
	} else {
		commit.disarm()
		p.killNow()
		f.record("SIGKILL %s at a random point (no %s within %s)", svc, eventType, f.wait)
	}
	return f.restartAfterKill(ctx, p)
}
