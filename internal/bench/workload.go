package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/internal/wait"
	"github.com/shopmesh/shopmesh/outbox"
)

// aggregates is how many aggregates the events are spread over: enough for
// every consumer worker to get a share, few enough that each aggregate sees
// many events (per-aggregate ordering is exercised).
const aggregates = 100

const (
	insertOrder  = `INSERT INTO bench_orders (aggregate_id, seq, amount_minor) VALUES ($1, $2, $3)`
	insertOutbox = `INSERT INTO watermill_outbox (uuid, payload, metadata, transaction_id) VALUES ($1, $2, $3, pg_current_xact_id())`
)

// event is the bench's unit of work: one order row and one event about it.
type event struct {
	seq     int
	agg     string
	amount  int64
	payload []byte
}

func makeEvent(seq int) event {
	agg := "order-" + strconv.Itoa(seq%aggregates)
	amount := int64(1000 + seq%9000)
	p := make([]byte, 0, 128)
	p = append(p, `{"order_id":"`...)
	p = append(p, agg...)
	p = append(p, `","seq":`...)
	p = strconv.AppendInt(p, int64(seq), 10)
	p = append(p, `,"sku":"SKU-`...)
	p = strconv.AppendInt(p, int64(seq%500), 10)
	p = append(p, `","quantity":2,"amount_minor":`...)
	p = strconv.AppendInt(p, amount, 10)
	p = append(p, `,"currency":"EUR"}`...)
	return event{seq: seq, agg: agg, amount: amount, payload: p}
}

// writeFunc commits one transaction holding the order row and the outbox
// row of event seq.
type writeFunc func(ctx context.Context, seq int) error

// wakeMode is how a writer tells the relay that it committed.
type wakeMode int

const (
	wakeInProcess wakeMode = iota // Outbox.Notify after commit (Outbox.WithTx)
	wakeNone                      // nothing: the relay finds rows at its next poll
	wakePgNotify                  // pg_notify inside the write transaction
)

// shopmeshWriter writes through the outbox library: Outbox.Publish inside
// the caller's transaction.
func shopmeshWriter(pool *pgxpool.Pool, ob *outbox.Outbox, eventType string, mode wakeMode) writeFunc {
	return func(ctx context.Context, seq int) error {
		ev := makeEvent(seq)
		fn := func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, insertOrder, ev.agg, seq, ev.amount); err != nil {
				return fmt.Errorf("insert order %d: %w", seq, err)
			}
			e := outbox.Event{Type: eventType, AggregateID: ev.agg, Payload: json.RawMessage(ev.payload)}
			if err := ob.Publish(ctx, tx, e); err != nil {
				return err
			}
			if mode == wakePgNotify {
				if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, outbox.NotifyChannel); err != nil {
					return fmt.Errorf("notify: %w", err)
				}
			}
			return nil
		}
		if mode == wakeInProcess {
			return ob.WithTx(ctx, pool, fn)
		}
		// WithTx without its Notify.
		return inTx(ctx, pool, fn)
	}
}

// rawWriter is the baseline writer: the same two rows with plain pgx. The
// outbox row carries the same envelope the library writes, so rows are the
// same size for every relay. wake, when set, runs after the commit.
func rawWriter(pool *pgxpool.Pool, source, eventType string, wake func()) writeFunc {
	return func(ctx context.Context, seq int) error {
		ev := makeEvent(seq)
		id := outbox.NewID()
		md, err := json.Marshal(envelope(id, eventType, source, ev.agg))
		if err != nil {
			return err
		}
		err = inTx(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, insertOrder, ev.agg, seq, ev.amount); err != nil {
				return fmt.Errorf("insert order %d: %w", seq, err)
			}
			if _, err := tx.Exec(ctx, insertOutbox, id, string(ev.payload), string(md)); err != nil {
				return fmt.Errorf("insert outbox row %d: %w", seq, err)
			}
			return nil
		})
		if err == nil && wake != nil {
			wake()
		}
		return err
	}
}

// forwarderWriter writes the same two rows the way an application using
// watermill's forwarder does; the relay is the forwarder's own 1 s poll.
func forwarderWriter(pool *pgxpool.Pool, destination, source, eventType string) writeFunc {
	return func(ctx context.Context, seq int) error {
		ev := makeEvent(seq)
		return inTx(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, insertOrder, ev.agg, seq, ev.amount); err != nil {
				return fmt.Errorf("insert order %d: %w", seq, err)
			}
			return publishForwarded(tx, destination, forwardedMessage(ev, eventType, source))
		})
	}
}

// envelope is the metadata the library writes for a first event of a flow.
func envelope(id, eventType, source, aggregateID string) map[string]string {
	return map[string]string{
		outbox.HeaderID:            id,
		outbox.HeaderType:          eventType,
		outbox.HeaderSource:        source,
		outbox.HeaderAggregateID:   aggregateID,
		outbox.HeaderOccurredAt:    time.Now().UTC().Format(time.RFC3339Nano),
		outbox.HeaderCorrelationID: id,
	}
}

func inTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// runWriters commits events 1..events from concurrent writers as fast as
// they go and returns the time from start to the last commit.
func runWriters(ctx context.Context, writers, events int, write writeFunc) (time.Duration, error) {
	run, err := runPaced(ctx, writers, events, 0, write)
	return run.elapsed, err
}

// writerRun is what one run of the writers took.
type writerRun struct {
	elapsed time.Duration   // from start to the last commit
	commits []time.Duration // each commit's time since start, ascending
}

// steadyRate is the writers' commits per second between the commits at
// fractions from and to of the run (say 0.2 and 0.8): the rate once
// whatever runs beside them has settled, without the run's start and end.
func (w writerRun) steadyRate(from, to float64) float64 {
	n := len(w.commits)
	i, j := int(from*float64(n)), min(int(to*float64(n)), n-1)
	if j <= i || w.commits[j] <= w.commits[i] {
		return math.NaN()
	}
	return float64(j-i) / (w.commits[j] - w.commits[i]).Seconds()
}

// runPaced commits events 1..events from concurrent writers, event i not
// before start + (i-1)/rate (rate 0: no pacing). A writer that falls behind
// writes at once, so the offered load stays at rate as long as the writers
// can sustain it.
func runPaced(ctx context.Context, writers, events int, rate float64, write writeFunc) (writerRun, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next, done atomic.Int64
	var wg sync.WaitGroup
	commits := make([]time.Duration, events)
	start := time.Now()
	for range writers {
		wg.Go(func() {
			for ctx.Err() == nil {
				seq := int(next.Add(1))
				if seq > events {
					return
				}
				if rate > 0 {
					due := start.Add(time.Duration(float64(seq-1) / rate * float64(time.Second)))
					if wait.Sleep(ctx, time.Until(due)) != nil {
						return
					}
				}
				if err := write(ctx, seq); err != nil {
					cancel(fmt.Errorf("write event %d: %w", seq, err))
					return
				}
				commits[seq-1] = time.Since(start)
				done.Add(1)
			}
		})
	}
	wg.Wait()
	run := writerRun{elapsed: time.Since(start), commits: commits}
	if err := context.Cause(ctx); err != nil {
		return run, fmt.Errorf("after %d of %d events: %w", done.Load(), events, err)
	}
	slices.Sort(run.commits)
	return run, nil
}

// commitClock records when each message's consumer transaction committed.
// For the library's consumer, whose commit the bench cannot wrap, it is the
// pool's query tracer: the handler binds the message to its connection, and
// the COMMIT that completes on that connection stamps the time.
type commitClock struct {
	mu      sync.Mutex
	pending map[*pgx.Conn][]string
	at      map[string]time.Time
	want    int
	done    chan struct{}
}

func newCommitClock(want int) *commitClock {
	return &commitClock{pending: map[*pgx.Conn][]string{}, at: make(map[string]time.Time, want), want: want, done: make(chan struct{})}
}

// bind says that the transaction open on conn applies message id (a
// consumer's transaction may apply several).
func (c *commitClock) bind(conn *pgx.Conn, id string) {
	c.mu.Lock()
	c.pending[conn] = append(c.pending[conn], id)
	c.mu.Unlock()
}

// record stamps message id as committed at t; the first stamp counts.
func (c *commitClock) record(id string, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.at[id]; dup {
		return
	}
	c.at[id] = t
	if len(c.at) == c.want {
		close(c.done)
	}
}

func (c *commitClock) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.at)
}

// last returns the latest commit time.
func (c *commitClock) last() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var last time.Time
	for _, t := range c.at {
		if t.After(last) {
			last = t
		}
	}
	return last
}

// wait blocks until want messages committed or ctx ends.
func (c *commitClock) wait(ctx context.Context) error {
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d of %d messages applied: %w", c.count(), c.want, ctx.Err())
	}
}

// TraceQueryStart implements pgx.QueryTracer.
func (c *commitClock) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

// TraceQueryEnd implements pgx.QueryTracer (see ended).
func (c *commitClock) TraceQueryEnd(_ context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	c.ended(conn, data.CommandTag, data.Err)
}

// TraceBatchStart implements pgx.BatchTracer.
func (c *commitClock) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

// TraceBatchQuery implements pgx.BatchTracer: a consumer sends its COMMIT
// in a batch with its last writes (see ended).
func (c *commitClock) TraceBatchQuery(_ context.Context, conn *pgx.Conn, data pgx.TraceBatchQueryData) {
	c.ended(conn, data.CommandTag, data.Err)
}

// TraceBatchEnd implements pgx.BatchTracer.
func (c *commitClock) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// ended stamps the messages bound to conn when a statement's tag is a
// successful COMMIT and forgets them on a ROLLBACK.
func (c *commitClock) ended(conn *pgx.Conn, commandTag pgconn.CommandTag, err error) {
	tag := commandTag.String()
	if tag != "COMMIT" && tag != "ROLLBACK" {
		return
	}
	now := time.Now()
	c.mu.Lock()
	ids := c.pending[conn]
	delete(c.pending, conn)
	c.mu.Unlock()
	if err == nil && tag == "COMMIT" {
		for _, id := range ids {
			c.record(id, now)
		}
	}
}

// latencies joins the commit times with the outbox rows' created_at (the
// insert time in the writer's transaction, UTC) and returns every
// commit-to-consumer-commit latency. It includes the writer's own commit.
func (c *commitClock) latencies(ctx context.Context, pool *pgxpool.Pool) ([]time.Duration, error) {
	// A forwarder's row is an envelope with its own id around the message.
	rows, err := pool.Query(ctx, `SELECT coalesce(payload->>'uuid', uuid::text), created_at FROM watermill_outbox`)
	if err != nil {
		return nil, fmt.Errorf("read outbox times: %w", err)
	}
	created := map[string]time.Time{}
	var id string
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&id, &at}, func() error {
		created[id] = at
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read outbox times: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Duration, 0, len(c.at))
	for id, done := range c.at {
		start, ok := created[id]
		if !ok {
			return nil, fmt.Errorf("message %s was applied but has no outbox row", id)
		}
		out = append(out, done.Sub(start))
	}
	if len(out) == 0 {
		return nil, errors.New("no message was applied")
	}
	return out, nil
}
