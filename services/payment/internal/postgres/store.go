// Package postgres is the payment service's PostgreSQL adapter: it loads and
// stores payments and writes their events to the outbox in the same
// transaction. It must not decide anything the domain decides.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/payment/internal/app"
	"github.com/shopmesh/shopmesh/services/payment/internal/domain"
)

// querier is what both a pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Store owns its transactions: each Update is one transaction.
type Store struct {
	pool *pgxpool.Pool
	ob   *outbox.Outbox
}

var (
	_ app.Payments = (*Store)(nil)
	_ app.Payments = (*TxStore)(nil)
)

// NewStore returns a store on pool writing events to ob.
func NewStore(pool *pgxpool.Pool, ob *outbox.Outbox) *Store {
	return &Store{pool: pool, ob: ob}
}

// InTx returns the store joined to tx, a message handler's inbox
// transaction: its writes commit or roll back with the inbox claim.
func (s *Store) InTx(tx pgx.Tx) *TxStore { return &TxStore{tx: tx, ob: s.ob} }

// Payment returns the payment of an order, or domain.ErrNotFound.
func (s *Store) Payment(ctx context.Context, orderID string) (*domain.Payment, error) {
	return load(ctx, s.pool, orderID, false)
}

// Update runs fn on the order's locked payment in a new transaction.
func (s *Store) Update(ctx context.Context, orderID string, fn app.UpdateFunc) error {
	return s.ob.WithTx(ctx, s.pool, func(tx pgx.Tx) error { return update(ctx, tx, s.ob, orderID, fn) })
}

// RecordRefundRequest keeps a refund request and its outcome.
func (s *Store) RecordRefundRequest(ctx context.Context, r domain.RefundRequest) error {
	return recordRefundRequest(ctx, s.pool, r)
}

// TxStore is the store inside a transaction it does not own.
type TxStore struct {
	tx pgx.Tx
	ob *outbox.Outbox
}

// Payment returns the payment of an order, or domain.ErrNotFound.
func (s *TxStore) Payment(ctx context.Context, orderID string) (*domain.Payment, error) {
	return load(ctx, s.tx, orderID, false)
}

// Update runs fn on the order's locked payment in the joined transaction.
func (s *TxStore) Update(ctx context.Context, orderID string, fn app.UpdateFunc) error {
	return update(ctx, s.tx, s.ob, orderID, fn)
}

// RecordRefundRequest keeps a refund request and its outcome.
func (s *TxStore) RecordRefundRequest(ctx context.Context, r domain.RefundRequest) error {
	return recordRefundRequest(ctx, s.tx, r)
}

func update(ctx context.Context, tx pgx.Tx, ob *outbox.Outbox, orderID string, fn app.UpdateFunc) error {
	cur, err := load(ctx, tx, orderID, true)
	if errors.Is(err, domain.ErrNotFound) {
		cur = nil
	} else if err != nil {
		return err
	}
	next, events, err := fn(cur)
	if err != nil {
		return err
	}
	// The payment's rows and its events in one round trip.
	b := &pgx.Batch{}
	if next != nil {
		queueSave(b, next)
	}
	if err := ob.Queue(ctx, b, events...); err != nil {
		return fmt.Errorf("publish events of order %s: %w", orderID, err)
	}
	if err := outbox.SendAtCommit(ctx, tx, b); err != nil {
		return fmt.Errorf("save the payment of order %s: %w", orderID, err)
	}
	return nil
}

// load reads the payment of an order with its attempts and refund; with
// lock, the payment row stays locked until the transaction ends.
func load(ctx context.Context, q querier, orderID string, lock bool) (*domain.Payment, error) {
	query := `SELECT id, order_id, user_id, amount_minor, currency, status, provider_reference, decline_reason,
	                 outcome_event_id, decided_at, created_at, updated_at
	          FROM payments WHERE order_id = $1`
	if lock {
		query += ` FOR UPDATE`
	}
	var (
		st        domain.Stored
		status    string
		eventID   *string
		decidedAt *time.Time
	)
	err := q.QueryRow(ctx, query, orderID).Scan(&st.ID, &st.OrderID, &st.UserID, &st.Amount.AmountMinor, &st.Amount.Currency,
		&status, &st.ProviderReference, &st.DeclineReason, &eventID, &decidedAt, &st.CreatedAt, &st.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, domain.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load payment of order %s: %w", orderID, err)
	}
	st.Status = domain.Status(status)
	if eventID != nil {
		st.OutcomeEventID = *eventID
	}
	if decidedAt != nil {
		st.DecidedAt = *decidedAt
	}

	rows, err := q.Query(ctx, `SELECT request_id, outcome, at FROM payment_attempts WHERE payment_id = $1 ORDER BY at, request_id`, st.ID)
	if err != nil {
		return nil, fmt.Errorf("load attempts of payment %s: %w", st.ID, err)
	}
	st.Attempts, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.Attempt, error) {
		var a domain.Attempt
		var outcome string
		err := row.Scan(&a.RequestID, &outcome, &a.At)
		a.Outcome = domain.Outcome(outcome)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("load attempts of payment %s: %w", st.ID, err)
	}

	var r domain.Refund
	err = q.QueryRow(ctx, `SELECT id, amount_minor, currency, reason, provider_reference, created_at
	                       FROM refunds WHERE payment_id = $1`, st.ID).
		Scan(&r.ID, &r.Amount.AmountMinor, &r.Amount.Currency, &r.Reason, &r.ProviderReference, &r.At)
	switch {
	case err == nil:
		st.Refund = &r
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("load refund of payment %s: %w", st.ID, err)
	}
	return domain.FromDatabase(st)
}

// queueSave queues the statements that store p: the payment, its new
// attempts and its refund. Attempts and refunds are immutable once written.
func queueSave(b *pgx.Batch, p *domain.Payment) {
	var eventID *string
	var decidedAt *time.Time
	if p.Decided() {
		id, at := p.OutcomeEventID(), p.DecidedAt()
		eventID, decidedAt = &id, &at
	}
	b.Queue(`
		INSERT INTO payments (id, order_id, user_id, amount_minor, currency, status, provider_reference, decline_reason,
		                      outcome_event_id, decided_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (id) DO UPDATE SET
			status = EXCLUDED.status, provider_reference = EXCLUDED.provider_reference,
			decline_reason = EXCLUDED.decline_reason, outcome_event_id = EXCLUDED.outcome_event_id,
			decided_at = EXCLUDED.decided_at, updated_at = EXCLUDED.updated_at`,
		p.ID(), p.OrderID(), p.UserID(), p.Amount().AmountMinor, p.Amount().Currency, string(p.Status()),
		p.ProviderReference(), p.DeclineReason(), eventID, decidedAt, p.CreatedAt(), p.UpdatedAt())
	if attempts := p.Attempts(); len(attempts) > 0 {
		// Every attempt in one statement; those already stored are kept.
		requests, outcomes, ats := make([]string, len(attempts)), make([]string, len(attempts)), make([]time.Time, len(attempts))
		for i, a := range attempts {
			requests[i], outcomes[i], ats[i] = a.RequestID, string(a.Outcome), a.At
		}
		b.Queue(`INSERT INTO payment_attempts (payment_id, request_id, outcome, at)
			SELECT $1, a.request_id, a.outcome, a.at FROM unnest($2::text[], $3::text[], $4::timestamptz[]) AS a(request_id, outcome, at)
			ON CONFLICT DO NOTHING`, p.ID(), requests, outcomes, ats)
	}
	if r, ok := p.Refund(); ok {
		// A second refund of the payment violates the UNIQUE (payment_id)
		// constraint; only the same refund written again is ignored.
		b.Queue(`INSERT INTO refunds (id, payment_id, amount_minor, currency, reason, provider_reference, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
			r.ID, p.ID(), r.Amount.AmountMinor, r.Amount.Currency, r.Reason, r.ProviderReference, r.At)
	}
}

func recordRefundRequest(ctx context.Context, q querier, r domain.RefundRequest) error {
	var paymentID *string
	if r.PaymentID != "" {
		paymentID = &r.PaymentID
	}
	_, err := q.Exec(ctx, `INSERT INTO refund_requests (request_id, order_id, payment_id, amount_minor, currency, reason, outcome, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
		r.RequestID, r.OrderID, paymentID, r.Amount.AmountMinor, r.Amount.Currency, r.Reason, string(r.Outcome), r.At)
	if err != nil {
		return fmt.Errorf("record refund request %s of order %s: %w", r.RequestID, r.OrderID, err)
	}
	return nil
}
