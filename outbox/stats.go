package outbox

import (
	"context"
	"embed"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/internal/pgmigrate"
	"github.com/shopmesh/shopmesh/internal/wait"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate creates or upgrades the library's tables in a service's database
// (version table outbox_schema_version, separate from the service's own).
func Migrate(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	sub, err := subFS(migrations, "migrations")
	if err != nil {
		return err
	}
	return pgmigrate.Up(ctx, pool, sub, "outbox_schema_version", logger)
}

// Stats is the state of one service's outbox and dead-letter store.
type Stats struct {
	// Pending counts committed events the relay has not confirmed yet.
	Pending int64
	// OldestPendingAge is the age of the oldest of them (zero when none).
	OldestPendingAge time.Duration
	// HeldBack counts those of them the relay cannot read yet: a
	// transaction older than theirs is still running in the same database
	// (see the relay's batch read). A count that stays up names a long
	// transaction in the service's database.
	HeldBack int64
	// Scheduled counts events waiting for their due time.
	Scheduled int64
	// DeadLetters counts open dead letters.
	DeadLetters int64
	// Duplicates counts redeliveries absorbed by the inbox, per consumer.
	Duplicates map[string]int64
}

// statsQuery reads the backlog of consumer group $1 (the relay), how much
// of it is held back, the scheduled events and the open dead letters. The
// backlog is what follows the cursor, compared as a row: one index range
// (see relayBatchQuery). Held back is counted below databaseBound, but
// only when some of the backlog is held back below clusterBound: nothing
// is then held back below databaseBound either (it is never older), and
// PostgreSQL evaluates the CASE's other branch, whose pg_stat_activity read
// is the costly part while any transaction runs (see databaseBound), only
// when it is taken. statsQueryCluster counts below clusterBound alone, for
// a role the server will not show other sessions' transactions.
const (
	statsQuery        = statsHead + `CASE WHEN ` + heldBelow + clusterBound + `) = 0 THEN 0 ELSE ` + heldBelow + databaseBound + `) END` + statsTail
	statsQueryCluster = statsHead + heldBelow + clusterBound + `)` + statsTail
	statsHead         = `
	WITH cursor AS (
		SELECT offset_acked, last_processed_transaction_id AS tx FROM watermill_offsets_outbox WHERE consumer_group = $1
	), pending AS (
		SELECT created_at, transaction_id FROM watermill_outbox
		WHERE (transaction_id, "offset") > ((SELECT tx FROM cursor), (SELECT offset_acked FROM cursor))
	)
	SELECT (SELECT count(*) FROM pending),
	       coalesce(extract(epoch FROM (now() AT TIME ZONE 'UTC') - (SELECT min(created_at) FROM pending)), 0)::float8,
	       `
	heldBelow = `(SELECT count(*) FROM pending WHERE transaction_id >= `
	statsTail = `,
	       (SELECT count(*) FROM outbox_scheduled),
	       (SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL AND discarded_at IS NULL)`
)

// ReadStats reads the outbox backlog and dead-letter count of one database.
func ReadStats(ctx context.Context, pool *pgxpool.Pool) (Stats, error) {
	var r statsReader
	return r.read(ctx, pool)
}

// statsReader reads the stats again and again (RunStatsGauges). Once the
// server has refused its role the other sessions' transactions, it counts
// held-back events below clusterBound only: the refusal stands, and a
// refused statement costs a round trip and an error in the server's log.
type statsReader struct {
	clusterOnly bool
}

func (r *statsReader) read(ctx context.Context, pool *pgxpool.Pool) (Stats, error) {
	var s Stats
	var ageSeconds float64
	scan := func(query string) error {
		return pool.QueryRow(ctx, query, relayGroup).Scan(&s.Pending, &ageSeconds, &s.HeldBack, &s.Scheduled, &s.DeadLetters)
	}
	var err error
	if r.clusterOnly {
		err = scan(statsQueryCluster)
	} else if err = scan(statsQuery); isInsufficientPrivilege(err) {
		r.clusterOnly = true
		err = scan(statsQueryCluster)
	}
	if err != nil {
		return s, fmt.Errorf("read outbox stats: %w", err)
	}
	s.OldestPendingAge = time.Duration(max(ageSeconds, 0) * float64(time.Second))
	rows, err := pool.Query(ctx, `SELECT consumer, count FROM inbox_duplicates ORDER BY consumer`)
	if err != nil {
		return s, fmt.Errorf("read inbox duplicates: %w", err)
	}
	defer rows.Close()
	s.Duplicates = map[string]int64{}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return s, err
		}
		s.Duplicates[name] = n
	}
	return s, rows.Err()
}

// QueueDepth returns the ready messages of a queue (passive declare, so it
// needs only read access and never creates the queue).
func QueueDepth(ctx context.Context, amqpURL, queue string) (int, error) {
	conn, err := amqp.DialConfig(amqpURL, amqp.Config{Dial: amqp.DefaultDial(HandshakeTimeout)})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("queue %s: %w", queue, err)
	}
	return q.Messages, nil
}

// RunStatsGauges refreshes the backlog gauges of m every interval until ctx ends.
func RunStatsGauges(ctx context.Context, pool *pgxpool.Pool, service string, m *Metrics, interval time.Duration) error {
	var r statsReader
	for {
		if s, err := r.read(ctx, pool); err == nil {
			m.setBacklog(service, s)
		}
		if wait.Sleep(ctx, interval) != nil {
			return ctx.Err()
		}
	}
}
