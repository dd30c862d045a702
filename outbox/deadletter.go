package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"
)

// DeadLetter is a message a consumer could not apply, with the reason.
type DeadLetter struct {
	ID          int64
	Consumer    string
	Queue       string
	MessageID   string
	Type        string
	Exchange    string
	RoutingKey  string
	Headers     map[string]any
	Payload     []byte
	Reason      string
	Attempts    int
	FailedAt    time.Time
	ReplayedAt  *time.Time
	DiscardedAt *time.Time
}

// ErrNoDeadLetter is returned for an id that is not an open dead letter.
var ErrNoDeadLetter = errors.New("no such open dead letter")

func storeDeadLetter(ctx context.Context, pool *pgxpool.Pool, consumer, queue string, d amqp.Delivery, msg Message, reason string, attempts int) error {
	id, typ := msg.ID, msg.Type
	if id == "" {
		id = d.MessageId
	}
	if id == "" {
		id = "unidentified-" + NewID()
	}
	if typ == "" {
		typ = d.RoutingKey
	}
	_, err := pool.Exec(context.WithoutCancel(ctx), `
		INSERT INTO dead_letters (consumer, queue, message_id, type, exchange, routing_key, headers, payload, reason, attempts)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (consumer, message_id) WHERE replayed_at IS NULL AND discarded_at IS NULL
		DO UPDATE SET reason = excluded.reason, attempts = dead_letters.attempts + excluded.attempts, failed_at = now()`,
		consumer, queue, id, typ, d.Exchange, d.RoutingKey, headersJSON(d.Headers), d.Body, reason, attempts)
	if err != nil {
		return fmt.Errorf("store dead letter %s: %w", id, err)
	}
	return nil
}

const deadLetterColumns = `id, consumer, queue, message_id, type, exchange, routing_key, headers, payload, reason, attempts, failed_at, replayed_at, discarded_at`

func scanDeadLetter(row pgx.CollectableRow) (DeadLetter, error) {
	var d DeadLetter
	var headers []byte
	err := row.Scan(&d.ID, &d.Consumer, &d.Queue, &d.MessageID, &d.Type, &d.Exchange, &d.RoutingKey, &headers,
		&d.Payload, &d.Reason, &d.Attempts, &d.FailedAt, &d.ReplayedAt, &d.DiscardedAt)
	if err == nil {
		err = json.Unmarshal(headers, &d.Headers)
	}
	return d, err
}

// ListDeadLetters returns the open dead letters (neither replayed nor
// discarded), oldest first; with all set, every one.
func ListDeadLetters(ctx context.Context, pool *pgxpool.Pool, all bool) ([]DeadLetter, error) {
	q := `SELECT ` + deadLetterColumns + ` FROM dead_letters`
	if !all {
		q += ` WHERE replayed_at IS NULL AND discarded_at IS NULL`
	}
	rows, err := pool.Query(ctx, q+` ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	return pgx.CollectRows(rows, scanDeadLetter)
}

// GetDeadLetter returns one dead letter by id.
func GetDeadLetter(ctx context.Context, pool *pgxpool.Pool, id int64) (DeadLetter, error) {
	rows, err := pool.Query(ctx, `SELECT `+deadLetterColumns+` FROM dead_letters WHERE id = $1`, id)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("get dead letter %d: %w", id, err)
	}
	d, err := pgx.CollectExactlyOneRow(rows, scanDeadLetter)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("dead letter %d: %w", id, ErrNoDeadLetter)
	}
	return d, err
}

// DiscardDeadLetter marks an open dead letter as discarded (kept for audit).
func DiscardDeadLetter(ctx context.Context, pool *pgxpool.Pool, id int64) error {
	tag, err := pool.Exec(ctx, `UPDATE dead_letters SET discarded_at = now() WHERE id = $1 AND replayed_at IS NULL AND discarded_at IS NULL`, id)
	if err != nil {
		return fmt.Errorf("discard dead letter %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("dead letter %d: %w", id, ErrNoDeadLetter)
	}
	return nil
}

// ReplayDeadLetter sends an open dead letter back to its consumer's queue
// (through the default exchange, so no other consumer sees it) and marks it
// replayed. The mark is written in a transaction that holds the letter's row
// and commits only after the broker confirmed the message: if the message
// fails again, its new dead letter cannot merge into this one, and a failed
// publish leaves the letter open. The message keeps its id, so the
// consumer's inbox applies it once however often it is replayed. amqpURL
// needs permission to publish to the default exchange (an operator account).
func ReplayDeadLetter(ctx context.Context, pool *pgxpool.Pool, amqpURL string, id int64) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("replay dead letter %d: %w", id, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	rows, err := tx.Query(ctx, `SELECT `+deadLetterColumns+` FROM dead_letters
		WHERE id = $1 AND replayed_at IS NULL AND discarded_at IS NULL FOR UPDATE`, id)
	if err != nil {
		return fmt.Errorf("replay dead letter %d: %w", id, err)
	}
	d, err := pgx.CollectExactlyOneRow(rows, scanDeadLetter)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("dead letter %d is not open: %w", id, ErrNoDeadLetter)
	}
	if err != nil {
		return fmt.Errorf("replay dead letter %d: %w", id, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE dead_letters SET replayed_at = now() WHERE id = $1`, id); err != nil {
		return fmt.Errorf("mark dead letter %d replayed: %w", id, err)
	}
	headers := amqp.Table{}
	for k, v := range d.Headers {
		if k == "x-death" || k == "x-first-death-reason" || k == "x-first-death-queue" || k == "x-first-death-exchange" ||
			k == "x-last-death-reason" || k == "x-last-death-queue" || k == "x-last-death-exchange" || k == "x-delivery-count" {
			continue
		}
		headers[k] = v
	}
	headers[HeaderReplay] = fmt.Sprintf("dead-letter:%d", d.ID)
	pub := amqp.Publishing{
		Headers: headers, ContentType: "application/json", DeliveryMode: amqp.Persistent,
		MessageId: d.MessageID, Type: d.Type, Body: d.Payload,
	}
	pubr, err := openOperatorPublisher(amqpURL, 1)
	if err != nil {
		return fmt.Errorf("replay dead letter %d: %w", id, err)
	}
	defer pubr.close()
	if err := pubr.toQueue(ctx, d.Queue, []amqp.Publishing{pub}); err != nil {
		return fmt.Errorf("replay dead letter %d: %w", id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		// Sent but not marked: the letter stays open; replaying it again
		// is absorbed by the inbox if the first copy was applied.
		return fmt.Errorf("mark dead letter %d replayed: %w", id, err)
	}
	return nil
}
