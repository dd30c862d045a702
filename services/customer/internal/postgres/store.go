// Package postgres is the customer service's PostgreSQL adapter: it loads
// and stores profiles and order-history entries of the read model, inside a
// message handler's inbox transaction when it applies events, and resets
// the model for a rebuild. The service publishes no events, so no outbox is
// written here. It must not decide anything the domain decides.
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

	"github.com/shopmesh/shopmesh/internal/ids"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/customer/internal/app"
	"github.com/shopmesh/shopmesh/services/customer/internal/domain"
)

// querier is what both a pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Store owns its transactions.
type Store struct {
	pool *pgxpool.Pool
}

var (
	_ app.Store = (*Store)(nil)
	_ app.Store = (*TxStore)(nil)
)

// NewStore returns a store on pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// InTx returns the store joined to tx, a message handler's inbox
// transaction: its writes commit or roll back with the inbox claim.
func (s *Store) InTx(tx pgx.Tx) *TxStore { return &TxStore{tx: tx} }

// UpdateProfile runs fn on the user's locked profile in a new transaction.
func (s *Store) UpdateProfile(ctx context.Context, userID string, fn app.ProfileFunc) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return updateProfile(ctx, tx, userID, fn) })
}

// UpdateOrder runs fn on the order's locked history entry in a new
// transaction.
func (s *Store) UpdateOrder(ctx context.Context, orderID string, fn app.OrderFunc) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return updateOrder(ctx, tx, orderID, fn) })
}

// Profile returns a user's profile.
func (s *Store) Profile(ctx context.Context, userID string) (*domain.Profile, error) {
	return loadProfile(ctx, s.pool, userID, false)
}

// OrdersCount counts a user's orders.
func (s *Store) OrdersCount(ctx context.Context, userID string) (int, error) {
	return ordersCount(ctx, s.pool, userID)
}

// History returns a page of a user's orders.
func (s *Store) History(ctx context.Context, userID string, after *app.Cursor, limit int) ([]*domain.Order, error) {
	return history(ctx, s.pool, userID, after, limit)
}

// TxStore is the store inside a transaction it does not own.
type TxStore struct{ tx pgx.Tx }

// UpdateProfile runs fn on the user's locked profile.
func (s *TxStore) UpdateProfile(ctx context.Context, userID string, fn app.ProfileFunc) error {
	return updateProfile(ctx, s.tx, userID, fn)
}

// UpdateOrder runs fn on the order's locked history entry.
func (s *TxStore) UpdateOrder(ctx context.Context, orderID string, fn app.OrderFunc) error {
	return updateOrder(ctx, s.tx, orderID, fn)
}

// Profile returns a user's profile.
func (s *TxStore) Profile(ctx context.Context, userID string) (*domain.Profile, error) {
	return loadProfile(ctx, s.tx, userID, false)
}

// OrdersCount counts a user's orders.
func (s *TxStore) OrdersCount(ctx context.Context, userID string) (int, error) {
	return ordersCount(ctx, s.tx, userID)
}

// History returns a page of a user's orders.
func (s *TxStore) History(ctx context.Context, userID string, after *app.Cursor, limit int) ([]*domain.Order, error) {
	return history(ctx, s.tx, userID, after, limit)
}

// Reset empties the read model inside tx, so that replaying history
// rebuilds it; the caller forgets the consumer's inbox keys in the same
// transaction.
func Reset(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `TRUNCATE history_timeline, history_orders, profiles`); err != nil {
		return fmt.Errorf("reset the customer read model: %w", err)
	}
	return nil
}

func updateProfile(ctx context.Context, tx pgx.Tx, userID string, fn app.ProfileFunc) error {
	// The row is created first, so that two events of a new user never race
	// to insert it: the second waits for the first's lock.
	if _, err := tx.Exec(ctx, `INSERT INTO profiles (user_id) VALUES ($1) ON CONFLICT DO NOTHING`, userID); err != nil {
		return fmt.Errorf("create profile %s: %w", userID, err)
	}
	cur, err := loadProfile(ctx, tx, userID, true)
	if err != nil {
		return err
	}
	next, err := fn(cur)
	if err != nil || next == nil {
		return err
	}
	var address []byte
	if a, ok := next.Address(); ok {
		if address, err = json.Marshal(addressRow{a.Name, a.Line1, a.Line2, a.City, a.PostalCode, a.Country}); err != nil {
			return fmt.Errorf("encode address of %s: %w", userID, err)
		}
	}
	_, err = tx.Exec(ctx, `
		UPDATE profiles SET email = $2, name = $3, registered_at = $4, address = $5, address_at = $6, deactivated_at = $7
		WHERE user_id = $1`,
		userID, next.Email(), next.Name(), nullTime(next.RegisteredAt()), address, nullTime(next.AddressAt()),
		nullTime(next.DeactivatedAt()))
	if err != nil {
		return fmt.Errorf("save profile %s: %w", userID, err)
	}
	return nil
}

// addressRow is the stored JSON of an address.
type addressRow struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

func loadProfile(ctx context.Context, q querier, userID string, lock bool) (*domain.Profile, error) {
	query := `SELECT user_id::text, email, name, registered_at, address, address_at, deactivated_at FROM profiles WHERE user_id = $1`
	if lock {
		query += ` FOR UPDATE`
	}
	var (
		s                                 domain.StoredProfile
		registered, addressAt, deactivate *time.Time
		address                           []byte
	)
	err := q.QueryRow(ctx, query, userID).Scan(&s.UserID, &s.Email, &s.Name, &registered, &address, &addressAt, &deactivate)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, domain.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load profile %s: %w", userID, err)
	}
	if address != nil {
		var a addressRow
		if err := json.Unmarshal(address, &a); err != nil {
			return nil, fmt.Errorf("decode address of %s: %w", userID, err)
		}
		s.Address = &domain.Address{Name: a.Name, Line1: a.Line1, Line2: a.Line2, City: a.City, PostalCode: a.PostalCode, Country: a.Country}
	}
	s.RegisteredAt, s.AddressAt, s.DeactivatedAt = deref(registered), deref(addressAt), deref(deactivate)
	return domain.ProfileFromDatabase(s)
}

func ordersCount(ctx context.Context, q querier, userID string) (int, error) {
	var n int
	if err := q.QueryRow(ctx, `SELECT count(*) FROM history_orders WHERE user_id = $1`, userID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count orders of %s: %w", userID, err)
	}
	return n, nil
}

// updateOrder reads the order with its timeline and writes what fn changed,
// one round trip each: the timeline is read after the row lock is granted,
// and the row and its new steps are written together. In a consumer's
// transaction the read is the batch's (see lockBatchOrder).
func updateOrder(ctx context.Context, tx pgx.Tx, orderID string, fn app.OrderFunc) error {
	cur, err := lockBatchOrder(ctx, tx, orderID)
	if err != nil {
		return err
	}
	next, err := fn(cur)
	if err != nil || next == nil {
		return err
	}
	var totalMinor *int64
	var currency *string
	if t, ok := next.Total(); ok {
		totalMinor, currency = &t.AmountMinor, &t.Currency
	}
	b := &pgx.Batch{}
	if cur == nil {
		// Events of one order normally apply one at a time (same aggregate,
		// same consumer worker); should two still race to create the entry,
		// the loser fails and is retried against the winner's row.
		b.Queue(`
			INSERT INTO history_orders (order_id, user_id, status, total_minor, currency, cancellation_reason, placed_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (order_id) DO NOTHING`,
			next.ID(), next.UserID(), string(next.Status()), totalMinor, currency, next.CancellationReason(),
			next.PlacedAt(), next.UpdatedAt()).Exec(func(tag pgconn.CommandTag) error {
			if tag.RowsAffected() == 0 {
				return errors.New("created concurrently; retry")
			}
			return nil
		})
	} else {
		b.Queue(`
			UPDATE history_orders SET status = $2, total_minor = $3, currency = $4, cancellation_reason = $5,
				placed_at = $6, updated_at = $7
			WHERE order_id = $1`,
			next.ID(), string(next.Status()), totalMinor, currency, next.CancellationReason(), next.PlacedAt(), next.UpdatedAt())
	}
	if added := next.Added(); len(added) > 0 {
		steps, ats := make([]string, len(added)), make([]time.Time, len(added))
		for i, e := range added {
			steps[i], ats[i] = string(e.Step), e.At
		}
		b.Queue(`INSERT INTO history_timeline (order_id, step, at)
			SELECT $1, s.step, s.at FROM unnest($2::text[], $3::timestamptz[]) WITH ORDINALITY AS s(step, at, i) ORDER BY s.i`,
			next.ID(), steps, ats)
	}
	if err := outbox.SendAtCommit(ctx, tx, b); err != nil {
		return fmt.Errorf("save order %s: %w", orderID, err)
	}
	stored(ctx, next)
	return nil
}

// lockBatchOrder returns the order's history entry, locked; nil when it is
// not stored yet. In a consumer's transaction the first call locks and
// reads the entries of every order the batch's messages name (a payload's
// order_id) in one round trip, and later calls are answered from them, as
// the transaction changed them (stored); see outbox.ReadBatched.
func lockBatchOrder(ctx context.Context, tx pgx.Tx, orderID string) (*domain.Order, error) {
	key, ok := ids.Canonical(orderID)
	if !ok {
		key = orderID // the read fails, as it should
	}
	o, _, err := outbox.ReadBatched(ctx, historiesKey{}, key, orderIDOf, func(keys []string) (map[string]*domain.Order, error) {
		found, err := lockOrders(ctx, tx, keys)
		byID := make(map[string]*domain.Order, len(found))
		for _, o := range found {
			byID[o.ID()] = o
		}
		return byID, err
	})
	return o, err
}

// orderIDOf is the order an event's payload names.
func orderIDOf(p struct {
	OrderID string `json:"order_id"`
}) (string, bool) {
	return ids.Canonical(p.OrderID)
}

// historiesKey names the history entries a consumer transaction has read
// and changed.
type historiesKey struct{}

// stored notes o, just written, as the transaction's current entry of its
// order: rebuilt as a read would return it (its new steps no longer new,
// times at the database's microsecond precision).
func stored(ctx context.Context, o *domain.Order) {
	key, ok := ids.Canonical(o.ID())
	if !ok {
		return
	}
	s := domain.StoredOrder{ID: key, UserID: o.UserID(), Status: o.Status(), CancellationReason: o.CancellationReason(),
		PlacedAt: o.PlacedAt().Truncate(time.Microsecond), UpdatedAt: o.UpdatedAt().Truncate(time.Microsecond)}
	if t, ok := o.Total(); ok {
		s.Total = &t
	}
	for _, e := range o.Timeline() {
		s.Timeline = append(s.Timeline, domain.TimelineEntry{Step: e.Step, At: e.At.Truncate(time.Microsecond)})
	}
	rebuilt, err := domain.OrderFromDatabase(s)
	if err != nil {
		outbox.ForgetBatched[*domain.Order](ctx, historiesKey{}, key) // read it again
		return
	}
	outbox.RememberBatched(ctx, historiesKey{}, key, rebuilt)
}

// lockOrders locks and reads orders with their timelines in one round
// trip, in the orders' order (so that two such reads cannot deadlock); the
// timelines are read after the row locks are granted.
func lockOrders(ctx context.Context, tx pgx.Tx, orderIDs []string) (_ []*domain.Order, err error) {
	b := &pgx.Batch{}
	cond, arg := servicekit.KeysIn("o.order_id", "uuid", 1, orderIDs)
	b.Queue(orderColumns+` FROM history_orders o WHERE `+cond+` ORDER BY o.order_id FOR UPDATE`, arg)
	b.Queue(selectTimelines(orderIDs))
	br := tx.SendBatch(ctx, b)
	defer func() {
		if cerr := br.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("load orders %v: %w", orderIDs, cerr)
		}
	}()
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("load orders %v: %w", orderIDs, err)
	}
	stored, err := collectOrders(rows)
	if err != nil {
		return nil, err
	}
	trows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("read the timelines of orders %v: %w", orderIDs, err)
	}
	return withTimelines(stored, trows)
}

const orderColumns = `SELECT o.order_id::text, o.user_id::text, o.status, o.total_minor, o.currency,
	o.cancellation_reason, o.placed_at, o.updated_at`

func history(ctx context.Context, q querier, userID string, after *app.Cursor, limit int) ([]*domain.Order, error) {
	var afterAt *time.Time
	var afterID *string
	if after != nil {
		afterAt, afterID = &after.PlacedAt, &after.OrderID
	}
	rows, err := q.Query(ctx, orderColumns+`
		FROM history_orders o
		WHERE o.user_id = $1 AND ($2::timestamptz IS NULL OR (o.placed_at, o.order_id) < ($2, $3::uuid))
		ORDER BY o.placed_at DESC, o.order_id DESC
		LIMIT $4`, userID, afterAt, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", userID, err)
	}
	return scanOrders(ctx, q, rows)
}

// selectTimelines reads the timelines of the orders ids, and its argument.
func selectTimelines(ids []string) (string, any) {
	cond, arg := servicekit.KeysIn("order_id", "uuid", 1, ids)
	return `SELECT order_id::text, step, at FROM history_timeline WHERE ` + cond, arg
}

// scanOrders reads order rows, then the timelines of all of them in one
// query.
func scanOrders(ctx context.Context, q querier, rows pgx.Rows) ([]*domain.Order, error) {
	stored, err := collectOrders(rows)
	if err != nil || len(stored) == 0 {
		return nil, err
	}
	ids := make([]string, len(stored))
	for i, s := range stored {
		ids[i] = s.ID
	}
	sql, arg := selectTimelines(ids)
	trows, err := q.Query(ctx, sql, arg)
	if err != nil {
		return nil, fmt.Errorf("read timelines: %w", err)
	}
	return withTimelines(stored, trows)
}

func collectOrders(rows pgx.Rows) ([]domain.StoredOrder, error) {
	stored, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.StoredOrder, error) {
		var (
			s          domain.StoredOrder
			status     string
			totalMinor *int64
			currency   *string
		)
		err := row.Scan(&s.ID, &s.UserID, &status, &totalMinor, &currency, &s.CancellationReason, &s.PlacedAt, &s.UpdatedAt)
		s.Status = domain.Status(status)
		if totalMinor != nil && currency != nil {
			s.Total = &domain.Money{AmountMinor: *totalMinor, Currency: *currency}
		}
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("read orders: %w", err)
	}
	return stored, nil
}

// withTimelines adds the timeline rows to the stored orders they belong to
// and returns the orders.
func withTimelines(stored []domain.StoredOrder, trows pgx.Rows) ([]*domain.Order, error) {
	index := make(map[string]int, len(stored))
	for i, s := range stored {
		index[s.ID] = i
	}
	var id, step string
	var at time.Time
	_, err := pgx.ForEachRow(trows, []any{&id, &step, &at}, func() error {
		if i, ok := index[id]; ok {
			stored[i].Timeline = append(stored[i].Timeline, domain.TimelineEntry{Step: domain.Step(step), At: at})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read timelines: %w", err)
	}
	out := make([]*domain.Order, 0, len(stored))
	for _, s := range stored {
		o, err := domain.OrderFromDatabase(s)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
