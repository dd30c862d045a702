// Package postgres is the loyalty service's PostgreSQL adapter: it loads and
// stores memberships and their points ledger and writes their events to the
// outbox in the same transaction. The ledger's unique indexes are the last
// word on "once per order"; the adapter reports a clash as
// domain.ErrAlreadyAwarded. It must not decide anything the domain decides.
package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/loyalty/internal/app"
	"github.com/shopmesh/shopmesh/services/loyalty/internal/domain"
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
	_ app.Members = (*Store)(nil)
	_ app.Members = (*TxStore)(nil)
)

// NewStore returns a store on pool writing events to ob.
func NewStore(pool *pgxpool.Pool, ob *outbox.Outbox) *Store {
	return &Store{pool: pool, ob: ob}
}

// InTx returns the store joined to tx, a message handler's inbox
// transaction: its writes commit or roll back with the inbox claim.
func (s *Store) InTx(tx pgx.Tx) *TxStore { return &TxStore{tx: tx, ob: s.ob} }

// Member returns a user's membership, or domain.ErrNotFound.
func (s *Store) Member(ctx context.Context, userID string) (*domain.Member, error) {
	return load(ctx, s.pool, userID, false)
}

// Entries returns a user's newest ledger entries.
func (s *Store) Entries(ctx context.Context, userID string, limit int) ([]domain.Entry, error) {
	return entries(ctx, s.pool, userID, limit)
}

// Update runs fn on the user's locked membership in a new transaction.
func (s *Store) Update(ctx context.Context, userID string, fn app.UpdateFunc) error {
	return s.ob.WithTx(ctx, s.pool, func(tx pgx.Tx) error { return update(ctx, tx, s.ob, userID, fn) })
}

// TxStore is the store inside a transaction it does not own.
type TxStore struct {
	tx pgx.Tx
	ob *outbox.Outbox
}

// Member returns a user's membership, or domain.ErrNotFound.
func (s *TxStore) Member(ctx context.Context, userID string) (*domain.Member, error) {
	return load(ctx, s.tx, userID, false)
}

// Entries returns a user's newest ledger entries.
func (s *TxStore) Entries(ctx context.Context, userID string, limit int) ([]domain.Entry, error) {
	return entries(ctx, s.tx, userID, limit)
}

// Update runs fn on the user's locked membership in the joined transaction.
func (s *TxStore) Update(ctx context.Context, userID string, fn app.UpdateFunc) error {
	return update(ctx, s.tx, s.ob, userID, fn)
}

func update(ctx context.Context, tx pgx.Tx, ob *outbox.Outbox, userID string, fn app.UpdateFunc) error {
	cur, err := load(ctx, tx, userID, true)
	if errors.Is(err, domain.ErrNotFound) {
		cur = nil
	} else if err != nil {
		return err
	}
	next, events, err := fn(cur)
	if err != nil {
		return err
	}
	if next != nil {
		if err := save(ctx, tx, next, cur == nil); err != nil {
			return err
		}
	}
	if err := ob.Publish(ctx, tx, events...); err != nil {
		return fmt.Errorf("publish events of member %s: %w", userID, err)
	}
	return nil
}

// load reads a membership; with lock, its row stays locked until the
// transaction ends, which serialises every change to one user's balance.
func load(ctx context.Context, q querier, userID string, lock bool) (*domain.Member, error) {
	query := `SELECT user_id::text, email, status, frozen, balance, fail_reason, created_at, updated_at
	          FROM members WHERE user_id = $1`
	if lock {
		query += ` FOR UPDATE`
	}
	var (
		st     domain.Stored
		status string
	)
	err := q.QueryRow(ctx, query, userID).Scan(&st.UserID, &st.Email, &status, &st.Frozen, &st.Balance,
		&st.FailReason, &st.CreatedAt, &st.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, domain.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load member %s: %w", userID, err)
	}
	st.Status = domain.Status(status)
	return domain.FromDatabase(st)
}

// save writes the ledger entries the member gained first, so that an entry
// the ledger already holds stops the whole change before anything else is
// written, then the membership itself.
func save(ctx context.Context, tx pgx.Tx, m *domain.Member, insert bool) error {
	if insert {
		if _, err := tx.Exec(ctx, `
			INSERT INTO members (user_id, email, status, frozen, balance, fail_reason, created_at, updated_at)
			VALUES ($1, $2, $3, $4, 0, $5, $6, $7)`,
			m.UserID(), m.Email(), string(m.Status()), m.Frozen(), m.FailReason(), m.CreatedAt(), m.UpdatedAt()); err != nil {
			return fmt.Errorf("insert member %s: %w", m.UserID(), err)
		}
	}
	for _, e := range m.Added() {
		var orderID *string
		if e.OrderID != "" {
			orderID = &e.OrderID
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO ledger (user_id, points, reason, order_id, at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT DO NOTHING`,
			m.UserID(), e.Points, string(e.Reason), orderID, e.At)
		if err != nil {
			return fmt.Errorf("credit %d points to %s: %w", e.Points, m.UserID(), err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("credit %s points to %s for order %q: %w", e.Reason, m.UserID(), e.OrderID, domain.ErrAlreadyAwarded)
		}
	}
	// In a consumer's transaction the membership travels with the COMMIT
	// (outbox.SendAtCommit) instead of a round trip of its own.
	b := &pgx.Batch{}
	b.Queue(`
		UPDATE members SET email = $2, status = $3, frozen = $4, balance = $5, fail_reason = $6, updated_at = $7
		WHERE user_id = $1`,
		m.UserID(), m.Email(), string(m.Status()), m.Frozen(), m.Balance(), m.FailReason(), m.UpdatedAt())
	if err := outbox.SendAtCommit(ctx, tx, b); err != nil {
		return fmt.Errorf("save member %s: %w", m.UserID(), err)
	}
	return nil
}

func entries(ctx context.Context, q querier, userID string, limit int) ([]domain.Entry, error) {
	rows, err := q.Query(ctx, `
		SELECT points, reason, coalesce(order_id::text, ''), at FROM ledger
		WHERE user_id = $1 ORDER BY at DESC, id DESC LIMIT $2`, userID, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger of %s: %w", userID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.Entry, error) {
		var e domain.Entry
		var reason string
		err := row.Scan(&e.Points, &reason, &e.OrderID, &e.At)
		e.Reason = domain.Reason(reason)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger of %s: %w", userID, err)
	}
	return out, nil
}
