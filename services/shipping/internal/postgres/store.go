// Package postgres is the shipping service's PostgreSQL adapter: it loads and
// stores shipments, hands out due shipments to the carrier loop, and writes
// events to the outbox in the same transaction as the state they describe.
// It must not decide anything the domain decides.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/shipping/internal/app"
	"github.com/shopmesh/shopmesh/services/shipping/internal/domain"
)

type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Store owns its transactions.
type Store struct {
	pool *pgxpool.Pool
	ob   *outbox.Outbox
}

var (
	_ app.Shipments    = (*Store)(nil)
	_ app.DueShipments = (*Store)(nil)
	_ app.Shipments    = (*TxStore)(nil)
)

// NewStore returns a store on pool writing events to ob.
func NewStore(pool *pgxpool.Pool, ob *outbox.Outbox) *Store { return &Store{pool: pool, ob: ob} }

// InTx returns the store joined to tx, a message handler's inbox
// transaction: its writes commit or roll back with the inbox claim.
func (s *Store) InTx(tx pgx.Tx) *TxStore { return &TxStore{tx: tx, ob: s.ob} }

// Shipment returns the shipment of an order, or domain.ErrNotFound.
func (s *Store) Shipment(ctx context.Context, orderID string) (*domain.Shipment, error) {
	return load(ctx, s.pool, orderID, false, "")
}

// Update runs fn on the order's locked shipment in a new transaction.
func (s *Store) Update(ctx context.Context, orderID string, fn app.UpdateFunc) error {
	return s.ob.WithTx(ctx, s.pool, func(tx pgx.Tx) error { return update(ctx, tx, s.ob, orderID, fn, "") })
}

// UpdateDue advances due shipments in one transaction. The due rows are
// locked with SKIP LOCKED, so several instances of the service share the
// work and a shipment being cancelled (its row locked by the cancellation)
// is simply skipped until that transaction ends. Each shipment is applied
// under a savepoint: one that fails is rolled back alone, stays due, and is
// retried at the next poll. The savepoint is set in the round trip that
// reads the shipment and released in the one that writes it.
func (s *Store) UpdateDue(ctx context.Context, now time.Time, limit int, fn app.UpdateFunc) (int, error) {
	var (
		n    int
		errs []error
	)
	err := s.ob.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		n, errs = 0, nil
		rows, err := tx.Query(ctx, `SELECT order_id FROM shipments WHERE due_at <= $1
			ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED`, now, limit)
		if err != nil {
			return fmt.Errorf("select due shipments: %w", err)
		}
		orderIDs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("select due shipments: %w", err)
		}
		for i, orderID := range orderIDs {
			sp := fmt.Sprintf("due_%d", i)
			if err := update(ctx, tx, s.ob, orderID, fn, sp); err != nil {
				if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT "+sp); rerr != nil {
					return fmt.Errorf("advance shipment of order %s: %w (and roll back: %w)", orderID, err, rerr)
				}
				errs = append(errs, fmt.Errorf("advance shipment of order %s: %w", orderID, err))
				continue
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, errors.Join(errs...)
}

// TxStore is the store inside a transaction it does not own.
type TxStore struct {
	tx pgx.Tx
	ob *outbox.Outbox
}

// Shipment returns the shipment of an order, or domain.ErrNotFound.
func (s *TxStore) Shipment(ctx context.Context, orderID string) (*domain.Shipment, error) {
	return load(ctx, s.tx, orderID, false, "")
}

// Update runs fn on the order's locked shipment in the joined transaction.
func (s *TxStore) Update(ctx context.Context, orderID string, fn app.UpdateFunc) error {
	return update(ctx, s.tx, s.ob, orderID, fn, "")
}

// update runs fn on the order's locked shipment in tx and writes what it
// decided with its events, held for the commit. Under a savepoint (sp not
// empty) it sets the savepoint in the read's round trip and sends the
// writes at once with the savepoint's release.
func update(ctx context.Context, tx pgx.Tx, ob *outbox.Outbox, orderID string, fn app.UpdateFunc, sp string) error {
	cur, err := load(ctx, tx, orderID, true, sp)
	if errors.Is(err, domain.ErrNotFound) {
		cur = nil
	} else if err != nil {
		return err
	}
	next, events, err := fn(cur)
	if err != nil {
		return err
	}
	// The shipment's rows and its events in one round trip.
	b := &pgx.Batch{}
	if next != nil {
		if err := queueSave(b, next); err != nil {
			return err
		}
	}
	if err := ob.Queue(ctx, b, events...); err != nil {
		return fmt.Errorf("publish events of order %s: %w", orderID, err)
	}
	send := outbox.SendAtCommit
	if sp != "" {
		b.Queue("RELEASE SAVEPOINT " + sp)
		send = func(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error { return tx.SendBatch(ctx, b).Close() }
	}
	if err := send(ctx, tx, b); err != nil {
		return fmt.Errorf("save the shipment of order %s: %w", orderID, err)
	}
	return nil
}

type addressRow struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

type lineRow struct {
	ProductID string `json:"product_id"`
	Quantity  int    `json:"quantity"`
}

// load reads the order's shipment and its history in one round trip (and
// one implicit transaction on a pool, so the two agree); with lock, the
// history is read once the row's lock is granted. A savepoint sp, if not
// empty, is set first in the same round trip.
func load(ctx context.Context, q querier, orderID string, lock bool, sp string) (*domain.Shipment, error) {
	query := `SELECT id, order_id, user_id, carrier, tracking, address, lines, status, failure_reason, failure_detail, due_at
	          FROM shipments WHERE order_id = $1`
	if lock {
		query += ` FOR UPDATE`
	}
	var (
		st      domain.Stored
		status  string
		address addressRow
		lines   []lineRow
		dueAt   *time.Time
		found   bool
	)
	b := &pgx.Batch{}
	if sp != "" {
		b.Queue("SAVEPOINT " + sp)
	}
	b.Queue(query, orderID).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&st.ID, &st.OrderID, &st.UserID, &st.Carrier, &st.Tracking,
			&address, &lines, &status, &st.FailureReason, &st.FailureDetail, &dueAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	b.Queue(`SELECT status, at FROM shipment_steps WHERE shipment_id = (SELECT id FROM shipments WHERE order_id = $1)
		ORDER BY seq`, orderID).Query(func(rows pgx.Rows) (err error) {
		st.History, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.Step, error) {
			var s domain.Step
			var status string
			err := row.Scan(&status, &s.At)
			s.Status = domain.Status(status)
			return s, err
		})
		return err
	})
	if err := q.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("load shipment of order %s: %w", orderID, err)
	}
	if !found {
		return nil, domain.ErrNotFound
	}
	st.Status = domain.Status(status)
	st.Address = domain.Address(address)
	for _, l := range lines {
		st.Lines = append(st.Lines, domain.Line(l))
	}
	if dueAt != nil {
		st.DueAt = *dueAt
	}
	return domain.FromDatabase(st)
}

// queueSave queues the statements that store s: the shipment and its
// history.
func queueSave(b *pgx.Batch, s *domain.Shipment) error {
	address, err := json.Marshal(addressRow(s.Address()))
	if err != nil {
		return err
	}
	lines := make([]lineRow, 0, len(s.Lines()))
	for _, l := range s.Lines() {
		lines = append(lines, lineRow(l))
	}
	linesJSON, err := json.Marshal(lines)
	if err != nil {
		return err
	}
	var dueAt *time.Time
	if d := s.DueAt(); !d.IsZero() {
		dueAt = &d
	}
	history := s.History()
	createdAt, updatedAt := history[0].At, history[len(history)-1].At
	b.Queue(`
		INSERT INTO shipments (id, order_id, user_id, carrier, tracking, address, lines, status, failure_reason,
		                       failure_detail, due_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (id) DO UPDATE SET
			tracking = EXCLUDED.tracking, status = EXCLUDED.status, failure_reason = EXCLUDED.failure_reason,
			failure_detail = EXCLUDED.failure_detail, due_at = EXCLUDED.due_at, updated_at = EXCLUDED.updated_at`,
		s.ID(), s.OrderID(), s.UserID(), s.Carrier(), s.Tracking(), address, linesJSON, string(s.Status()),
		s.FailureReason(), s.FailureDetail(), dueAt, createdAt, updatedAt)
	// The whole history goes in one statement; steps already stored are
	// kept (ON CONFLICT), so only the new ones are written.
	statuses, ats := make([]string, len(history)), make([]time.Time, len(history))
	for i, step := range history {
		statuses[i], ats[i] = string(step.Status), step.At
	}
	b.Queue(`
		INSERT INTO shipment_steps (shipment_id, seq, status, at)
		SELECT $1, h.seq, h.status, h.at FROM unnest($2::text[], $3::timestamptz[]) WITH ORDINALITY AS h(status, at, seq)
		ON CONFLICT DO NOTHING`, s.ID(), statuses, ats)
	return nil
}
