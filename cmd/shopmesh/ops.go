package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/platform"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
)

// inboxConsumer is the name of each service's event consumer: its queue is
// shopmesh.<service>.inbox and it binds every type the registry lists the
// service as a consumer of.
const inboxConsumer = "inbox"

// consumedTypes returns the event types service consumes, per the
// registry, sorted.
func consumedTypes(service string) []string {
	types := servicekit.Consumes(service)
	slices.Sort(types)
	return types
}

func producers() []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range contracts.Registry() {
		if !seen[t.Producer] {
			seen[t.Producer] = true
			out = append(out, t.Producer)
		}
	}
	sort.Strings(out)
	return out
}

func newMigrateCommand(a *app) *cobra.Command {
	var skipProvision bool
	cmd := &cobra.Command{
		Use:   "migrate [service...]",
		Short: "Provision databases, roles and broker users, apply migrations, declare the broker topology",
		Long: `migrate is idempotent. For each service (all when none is named) it creates the
service's PostgreSQL role and database and its RabbitMQ user with permissions on
its own exchange and queues only, applies the outbox and service migrations, and
declares the whole topology from the event registry: every producer exchange and
every service's inbox queue with its bindings and dead-letter route, so no event
is published before its queues exist.

With --skip-provision, roles, databases and broker users are taken as they are
(given explicitly through SHOPMESH_<SERVICE>_DATABASE_URL and _AMQP_URL, as on a
managed platform); only migrations and the topology are applied.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := selectServices(args)
			if err != nil {
				return err
			}
			return a.migrate(cmd.Context(), names, !skipProvision)
		},
	}
	cmd.Flags().BoolVar(&skipProvision, "skip-provision", false, "only apply migrations and declare the topology")
	return cmd
}

func (a *app) migrate(ctx context.Context, names []string, provision bool) error {
	if provision {
		if err := a.env.requireAdmin(); err != nil {
			return err
		}
		if a.env.admin.Secret == "" {
			return errors.New("SHOPMESH_SECRET is required to derive the services' credentials")
		}
		if err := platform.Provision(ctx, a.env.admin, serviceSpecs(names)); err != nil {
			return fmt.Errorf("provision: %w", err)
		}
	} else if a.env.admin.AMQPURL == "" {
		return errors.New("SHOPMESH_AMQP_URL is required to declare the topology")
	}
	for _, name := range names {
		dbURL, _, err := a.env.serviceURLs(name)
		if err != nil {
			return err
		}
		if err := a.migrateDatabase(ctx, name, dbURL); err != nil {
			return err
		}
	}
	if err := a.declareTopology(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "migrated %d services\n", len(names))
	return nil
}

func (a *app) migrateDatabase(ctx context.Context, name, dbURL string) error {
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("%s database: %w", name, err)
	}
	defer pool.Close()
	if err := outbox.Migrate(ctx, pool, a.logger.With("service", name)); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if t, ok := targets()[name]; ok && t.migrations != nil {
		if err := migrateService(ctx, pool, name, t.migrations, a.logger); err != nil {
			return err
		}
	}
	return nil
}

// declareTopology declares every producer exchange and every service's inbox
// queue from the registry, whichever services are being migrated: a queue
// must exist before events of its types are published (mandatory routing
// keeps an event nobody is bound to in its producer's outbox, holding back
// the events behind it), and a service deployed later then finds the events
// published before it waiting in its queue.
func (a *app) declareTopology() error {
	conn, err := amqp.Dial(a.env.admin.AMQPURL)
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	for _, p := range producers() {
		if err := outbox.DeclareExchange(ch, p); err != nil {
			return err
		}
	}
	for _, name := range serviceNames {
		types := consumedTypes(name)
		if len(types) == 0 {
			continue
		}
		spec := outbox.QueueSpec{Name: outbox.QueueName(name, inboxConsumer), Types: types, DeliveryLimit: 20, SingleActiveConsumer: true}
		if err := outbox.DeclareQueue(ch, spec); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// serviceDatabase connects to a service's database with the URL the
// service itself would use.
func (a *app) serviceDatabase(ctx context.Context, name string) (*pgxpool.Pool, error) {
	dbURL, _, err := a.env.serviceURLs(name)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("%s database: %w", name, err)
	}
	return pool, nil
}

type serviceStatus struct {
	Service          string           `json:"service"`
	Error            string           `json:"error,omitempty"`
	OutboxPending    int64            `json:"outbox_pending"`
	OldestPendingAge float64          `json:"oldest_pending_age_seconds"`
	HeldBack         int64            `json:"outbox_held_back"`
	Scheduled        int64            `json:"scheduled"`
	DeadLetters      int64            `json:"dead_letters"`
	Duplicates       map[string]int64 `json:"inbox_duplicates"`
	QueueDepth       *int             `json:"queue_depth,omitempty"`
	BrokerDLQDepth   *int             `json:"broker_dlq_depth,omitempty"`
}

func newStatusCommand(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [service...]",
		Short: "Per service: outbox backlog, its age and how much of it an older transaction holds back, queue depths, dead letters, duplicates absorbed",
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := selectServices(args)
			if err != nil {
				return err
			}
			var out []serviceStatus
			for _, n := range names {
				out = append(out, a.status(cmd.Context(), n))
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERVICE\tOUTBOX PENDING\tOLDEST\tHELD BACK\tSCHEDULED\tQUEUE\tBROKER DLQ\tDEAD LETTERS\tDUPLICATES\tERROR")
			for _, s := range out {
				var dups int64
				for _, d := range s.Duplicates {
					dups += d
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%s\t%d\t%d\t%s\n", s.Service, s.OutboxPending,
					time.Duration(s.OldestPendingAge*float64(time.Second)).Round(time.Millisecond), s.HeldBack, s.Scheduled,
					depth(s.QueueDepth), depth(s.BrokerDLQDepth), s.DeadLetters, dups, s.Error)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func depth(d *int) string {
	if d == nil {
		return "-"
	}
	return strconv.Itoa(*d)
}

func (a *app) status(ctx context.Context, name string) serviceStatus {
	s := serviceStatus{Service: name}
	pool, err := a.serviceDatabase(ctx, name)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	defer pool.Close()
	st, err := outbox.ReadStats(ctx, pool)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	s.OutboxPending, s.OldestPendingAge, s.HeldBack, s.Scheduled, s.DeadLetters, s.Duplicates =
		st.Pending, st.OldestPendingAge.Seconds(), st.HeldBack, st.Scheduled, st.DeadLetters, st.Duplicates
	q := outbox.QueueName(name, inboxConsumer)
	if d, err := outbox.QueueDepth(ctx, a.env.admin.AMQPURL, q); err == nil {
		s.QueueDepth = &d
	}
	if d, err := outbox.QueueDepth(ctx, a.env.admin.AMQPURL, q+".dlq"); err == nil {
		s.BrokerDLQDepth = &d
	}
	return s
}

func newDLQCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "dlq", Short: "List, show, replay or discard dead letters"}
	var all bool
	list := &cobra.Command{
		Use:   "list [service...]",
		Short: "List open dead letters (with --all, replayed and discarded ones too)",
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := selectServices(args)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERVICE\tID\tCONSUMER\tTYPE\tMESSAGE ID\tATTEMPTS\tFAILED AT\tSTATE\tREASON")
			for _, n := range names {
				pool, err := a.serviceDatabase(cmd.Context(), n)
				if err != nil {
					return err
				}
				letters, err := outbox.ListDeadLetters(cmd.Context(), pool, all)
				pool.Close()
				if err != nil {
					return fmt.Errorf("%s: %w", n, err)
				}
				for _, d := range letters {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", n, d.ID, d.Consumer, d.Type, d.MessageID,
						d.Attempts, d.FailedAt.Format(time.RFC3339), deadLetterState(d), d.Reason)
				}
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&all, "all", false, "include replayed and discarded dead letters")
	show := &cobra.Command{
		Use:   "show SERVICE ID",
		Short: "Show one dead letter with its headers and payload",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withDeadLetters(cmd.Context(), args[0], args[1:], func(pool *pgxpool.Pool, id int64) error {
				d, err := outbox.GetDeadLetter(cmd.Context(), pool, id)
				if err != nil {
					return err
				}
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{
					"id": d.ID, "consumer": d.Consumer, "queue": d.Queue, "message_id": d.MessageID, "type": d.Type,
					"exchange": d.Exchange, "routing_key": d.RoutingKey, "reason": d.Reason, "attempts": d.Attempts,
					"failed_at": d.FailedAt, "state": deadLetterState(d), "headers": d.Headers, "payload": json.RawMessage(validJSON(d.Payload)),
				})
			})
		},
	}
	replay := &cobra.Command{
		Use:   "replay SERVICE ID...",
		Short: "Send dead letters back to their consumer (applied at most once: the inbox absorbs repeats)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withDeadLetters(cmd.Context(), args[0], args[1:], func(pool *pgxpool.Pool, id int64) error {
				if err := outbox.ReplayDeadLetter(cmd.Context(), pool, a.env.admin.AMQPURL, id); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "replayed dead letter %d of %s\n", id, args[0])
				return nil
			})
		},
	}
	discard := &cobra.Command{
		Use:   "discard SERVICE ID...",
		Short: "Mark dead letters as discarded (kept for audit, never delivered)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withDeadLetters(cmd.Context(), args[0], args[1:], func(pool *pgxpool.Pool, id int64) error {
				if err := outbox.DiscardDeadLetter(cmd.Context(), pool, id); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "discarded dead letter %d of %s\n", id, args[0])
				return nil
			})
		},
	}
	cmd.AddCommand(list, show, replay, discard)
	return cmd
}

func validJSON(b []byte) []byte {
	if json.Valid(b) {
		return b
	}
	q, _ := json.Marshal(string(b))
	return q
}

func deadLetterState(d outbox.DeadLetter) string {
	switch {
	case d.ReplayedAt != nil:
		return "replayed"
	case d.DiscardedAt != nil:
		return "discarded"
	}
	return "open"
}

func (a *app) withDeadLetters(ctx context.Context, service string, ids []string, fn func(*pgxpool.Pool, int64) error) error {
	if _, err := selectServices([]string{service}); err != nil {
		return err
	}
	pool, err := a.serviceDatabase(ctx, service)
	if err != nil {
		return err
	}
	defer pool.Close()
	var errs []error
	for _, s := range ids {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("dead letter id %q is not a number", s))
			continue
		}
		if err := fn(pool, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func newReplayCommand(a *app) *cobra.Command {
	var consumer, since string
	var types []string
	cmd := &cobra.Command{
		Use:   "replay --consumer SERVICE --since TIME",
		Short: "Re-deliver retained event history to one consumer",
		Long: `replay reads the retained outbox log of every producer the consumer reads from
and publishes the events it subscribes to, in each producer's commit order, to
that consumer's queue only. Events keep their ids: the consumer's inbox skips
those it already applied, so replay fills gaps (a new read model, a consumer
whose queue was lost) and never applies an event twice. --since takes an
RFC 3339 time or a duration back from now (e.g. 24h); history older than the
outbox retention window is gone.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			from, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			return a.replay(cmd.Context(), consumer, from, types)
		},
	}
	cmd.Flags().StringVar(&consumer, "consumer", "", "consuming service (its inbox queue receives the replay)")
	cmd.Flags().StringVar(&since, "since", "", "earliest event time: RFC 3339 or a duration ago such as 2h")
	cmd.Flags().StringSliceVar(&types, "types", nil, "only these event types (default: every type the consumer handles)")
	_ = cmd.MarkFlagRequired("consumer")
	_ = cmd.MarkFlagRequired("since")
	return cmd
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q is neither an RFC 3339 time nor a positive duration", s)
}

func (a *app) replay(ctx context.Context, consumer string, since time.Time, types []string) error {
	if _, err := selectServices([]string{consumer}); err != nil {
		return err
	}
	if a.env.admin.AMQPURL == "" {
		return errors.New("SHOPMESH_AMQP_URL (an account allowed to publish to the default exchange) is required to replay")
	}
	handled := consumedTypes(consumer)
	if len(types) == 0 {
		types = handled
	}
	byProducer := map[string][]string{}
	for _, t := range types {
		if !slices.Contains(handled, t) {
			return fmt.Errorf("%s does not consume %s", consumer, t)
		}
		p, err := outbox.ProducerOf(t)
		if err != nil {
			return err
		}
		byProducer[p] = append(byProducer[p], t)
	}
	queue := outbox.QueueName(consumer, inboxConsumer)
	total := 0
	for _, p := range slices.Sorted(maps.Keys(byProducer)) {
		pool, err := a.serviceDatabase(ctx, p)
		if err != nil {
			return err
		}
		n, err := outbox.Replay(ctx, outbox.ReplayRequest{Source: pool, AMQPURL: a.env.admin.AMQPURL, Queue: queue, Types: byProducer[p], Since: since})
		pool.Close()
		if err != nil {
			return fmt.Errorf("replay from %s: %w", p, err)
		}
		fmt.Fprintf(a.stdout, "%s -> %s: %d events\n", p, queue, n)
		total += n
	}
	fmt.Fprintf(a.stdout, "replayed %d events to %s\n", total, queue)
	return nil
}
