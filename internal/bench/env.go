package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/internal/wait"
	"github.com/shopmesh/shopmesh/outbox"
)

// env is one run's private infrastructure: a fresh database bench_<id> with
// the outbox tables and the bench's domain tables, and the broker objects the
// run declares. Everything it creates is removed by close.
type env struct {
	id       string // 8 hex digits, unique per run
	adminURL string
	amqpURL  string
	dbName   string
	created  bool            // the database exists and close must drop it
	poolCfg  *pgxpool.Config // the bench database, not yet tuned per pool

	admin *amqp.Connection // declares and deletes topology
	ch    *amqp.Channel

	queues    []string
	exchanges []string
}

// Domain tables: the writer's own row next to its outbox row, and the
// consumer's effect next to its inbox claim.
const domainSchema = `
CREATE TABLE bench_orders (
	id           BIGSERIAL PRIMARY KEY,
	aggregate_id TEXT NOT NULL,
	seq          INT NOT NULL,
	amount_minor BIGINT NOT NULL
);
CREATE TABLE bench_applied (
	id           BIGSERIAL PRIMARY KEY,
	consumer     TEXT NOT NULL,
	message_id   TEXT NOT NULL,
	aggregate_id TEXT NOT NULL,
	seq          INT NOT NULL
);`

// newEnv creates the run's database and opens the broker connection. On
// error nothing is left behind.
func newEnv(ctx context.Context, adminURL, amqpURL string) (_ *env, err error) {
	e := &env{id: fmt.Sprintf("%08x", rand.Uint32()), adminURL: adminURL, amqpURL: amqpURL}
	e.dbName = "bench_" + e.id
	defer func() {
		if err != nil {
			e.close()
		}
	}()

	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	_, err = admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{e.dbName}.Sanitize())
	admin.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("create database %s: %w", e.dbName, err)
	}
	e.created = true
	if e.poolCfg, err = pgxpool.ParseConfig(adminURL); err != nil {
		return nil, fmt.Errorf("postgres url: %w", err)
	}
	e.poolCfg.ConnConfig.Database = e.dbName

	pool, err := e.pool(ctx, 2, nil)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if err := outbox.Migrate(ctx, pool, nil); err != nil {
		return nil, fmt.Errorf("migrate outbox tables: %w", err)
	}
	if _, err := pool.Exec(ctx, domainSchema); err != nil {
		return nil, fmt.Errorf("create domain tables: %w", err)
	}

	if e.admin, err = amqp.DialConfig(amqpURL, amqp.Config{Dial: amqp.DefaultDial(outbox.HandshakeTimeout)}); err != nil {
		return nil, fmt.Errorf("connect to rabbitmq: %w", err)
	}
	if e.ch, err = e.admin.Channel(); err != nil {
		return nil, fmt.Errorf("rabbitmq channel: %w", err)
	}
	return e, nil
}

// pool opens a pool on the run's database. Each component gets its own pool,
// sized for it, so that one cannot starve another of connections.
func (e *env) pool(ctx context.Context, maxConns int32, tracer pgx.QueryTracer) (*pgxpool.Pool, error) {
	cfg := e.poolCfg.Copy()
	cfg.MaxConns = maxConns
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", e.dbName, err)
	}
	// Open every connection now, so that no measurement pays for connecting.
	conns := make([]*pgxpool.Conn, 0, maxConns)
	for range maxConns {
		var c *pgxpool.Conn
		if c, err = pool.Acquire(ctx); err != nil {
			break
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s: %w", e.dbName, err)
	}
	return pool, nil
}

// name returns a broker name private to this run: bench.<id>.<suffix>.
func (e *env) name(suffix string) string { return "bench." + e.id + "." + suffix }

// service returns a producer service name private to this run. The outbox
// library derives the exchange from it (shopmesh.bench_<id>_<suffix>), so
// the shopmesh side of the bench cannot use the bench. prefix; the id keeps
// the names unique all the same, and close deletes them.
func (e *env) service(suffix string) string { return "bench_" + e.id + "_" + suffix }

// declareExchange declares a durable exchange and records it for deletion.
func (e *env) declareExchange(name, kind string) error {
	if err := e.ch.ExchangeDeclare(name, kind, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", name, err)
	}
	e.exchanges = append(e.exchanges, name)
	return nil
}

// declareQueue declares a durable quorum queue bound to exchange with key and
// records it for deletion. Every queue in the bench is a quorum queue, as in
// production, so every variant pays the same broker-side cost per message.
func (e *env) declareQueue(name, exchange, key string, args amqp.Table) error {
	qargs := amqp.Table{"x-queue-type": "quorum"}
	for k, v := range args {
		qargs[k] = v
	}
	if _, err := e.ch.QueueDeclare(name, true, false, false, false, qargs); err != nil {
		return fmt.Errorf("declare queue %s: %w", name, err)
	}
	e.queues = append(e.queues, name)
	if err := e.ch.QueueBind(name, key, exchange, false, nil); err != nil {
		return fmt.Errorf("bind %s to %s: %w", name, exchange, err)
	}
	return nil
}

// forget records broker objects created by someone else (the outbox
// consumer declares its own queue and dead-letter route) for deletion.
func (e *env) forget(queues, exchanges []string) {
	e.queues = append(e.queues, queues...)
	e.exchanges = append(e.exchanges, exchanges...)
}

// purgeLeftovers empties queue, if it exists, of what the previous
// measurement left: messages its consumer took but had not acknowledged
// when it stopped go back to the queue, and the next measurement, whose
// tables were emptied, would apply them as its own.
func (e *env) purgeLeftovers(queue string) error {
	if _, _, err := e.inspect(queue); err != nil {
		if queueMissing(err) {
			return nil // not declared yet: nothing left over
		}
		return err
	}
	return e.purge(queue)
}

func (e *env) purge(queue string) error {
	if _, err := e.ch.QueuePurge(queue, false); err != nil {
		return fmt.Errorf("purge %s: %w", queue, err)
	}
	return nil
}

// bind adds a binding of queue to exchange.
func (e *env) bind(queue, exchange, key string) error {
	if err := e.ch.QueueBind(queue, key, exchange, false, nil); err != nil {
		return fmt.Errorf("bind %s to %s: %w", queue, exchange, err)
	}
	return nil
}

// inspect returns a queue's ready messages and consumers. It uses a channel
// of its own: the broker closes the channel of a passive declare that fails.
func (e *env) inspect(queue string) (messages, consumers int, err error) {
	ch, err := e.admin.Channel()
	if err != nil {
		return 0, 0, fmt.Errorf("rabbitmq channel: %w", err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("queue %s: %w", queue, err)
	}
	return q.Messages, q.Consumers, nil
}

// queueMissing reports whether err is inspect's answer for a queue nobody
// declared yet.
func queueMissing(err error) bool {
	var amqpErr *amqp.Error
	return errors.As(err, &amqpErr) && amqpErr.Code == amqp.NotFound
}

// waitConsumer waits until queue has a consumer, so that nothing is
// published before the consumer side is ready.
func (e *env) waitConsumer(ctx context.Context, queue string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return wait.Poll(ctx, 10*time.Millisecond, "a consumer on "+queue, func(context.Context) (bool, error) {
		_, n, err := e.inspect(queue)
		if queueMissing(err) {
			return false, nil // its consumer declares it when it starts
		}
		return n > 0, err
	})
}

// waitMessages waits until queue holds at least n ready messages.
func (e *env) waitMessages(ctx context.Context, queue string, n int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return wait.Poll(ctx, 20*time.Millisecond, fmt.Sprintf("%d messages on %s", n, queue), func(context.Context) (bool, error) {
		m, _, err := e.inspect(queue)
		return m >= n, err
	})
}

// reset empties every table between measurements and rewinds the cursors,
// so that each measurement starts from the same state. Every component
// must be stopped: TRUNCATE waits for their locks.
func (e *env) reset(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, `
		TRUNCATE watermill_outbox, outbox_scheduled, inbox, inbox_duplicates, dead_letters,
		         bench_orders, bench_applied RESTART IDENTITY;
		DELETE FROM watermill_offsets_outbox WHERE consumer_group <> 'shopmesh-relay';
		UPDATE watermill_offsets_outbox SET offset_acked = 0, last_processed_transaction_id = '0';`)
	if err != nil {
		return fmt.Errorf("reset tables: %w", err)
	}
	return nil
}

// close deletes the broker objects and drops the database. It runs with its
// own deadline so that a cancelled run still cleans up.
func (e *env) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	if e.admin != nil {
		// The run's channel may have been closed by a broker error; use a fresh one.
		if ch, err := e.admin.Channel(); err == nil {
			for _, q := range e.queues {
				if _, err := ch.QueueDelete(q, false, false, false); err != nil {
					errs = append(errs, fmt.Errorf("delete queue %s: %w", q, err))
					if ch, err = e.admin.Channel(); err != nil {
						break
					}
				}
			}
			for _, x := range e.exchanges {
				if err := ch.ExchangeDelete(x, false, false); err != nil {
					errs = append(errs, fmt.Errorf("delete exchange %s: %w", x, err))
					if ch, err = e.admin.Channel(); err != nil {
						break
					}
				}
			}
		} else {
			errs = append(errs, fmt.Errorf("broker cleanup: %w", err))
		}
		e.admin.Close()
	}
	if e.created {
		// A few attempts: the server may be restarting under the run.
		var err error
		for attempt := 0; attempt < 5; attempt++ {
			if attempt > 0 && wait.Sleep(ctx, 2*time.Second) != nil {
				break
			}
			var admin *pgx.Conn
			if admin, err = pgx.Connect(ctx, e.adminURL); err == nil {
				_, err = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{e.dbName}.Sanitize()+" WITH (FORCE)")
				admin.Close(ctx)
			}
			if err == nil {
				break
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("drop database %s: %w", e.dbName, err))
		}
	}
	return errors.Join(errs...)
}

// environment describes the machine and servers the figures come from.
func (e *env) environment(ctx context.Context, pool *pgxpool.Pool) (Environment, error) {
	var env Environment
	err := pool.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('fsync'),
		current_setting('synchronous_commit')`).Scan(&env.PostgreSQL, &env.Fsync, &env.SynchronousCommit)
	if err != nil {
		return env, fmt.Errorf("read postgres settings: %w", err)
	}
	if v, ok := e.admin.Properties["version"].(string); ok {
		env.RabbitMQ = v
	}
	return env, nil
}

// loadAverage returns the machine's 1, 5 and 15 minute load averages, or ""
// where /proc/loadavg does not exist.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
