// Package postgres stores orders in the order service's PostgreSQL database.
// It owns the transaction: every change of an order is written together with
// its timeline entries and its events (outbox rows, scheduled timeouts) in
// one transaction, which for a saga reply is the consumer's inbox-guarded
// transaction. It must not decide anything about orders: the domain does.
package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/internal/ids"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/order/internal/app"
	"github.com/shopmesh/shopmesh/services/order/internal/domain"
)

// Store is the order store on a pool; each Update is its own transaction.
type Store struct {
	pool *pgxpool.Pool
	ob   *outbox.Outbox
}

// NewStore returns the store of pool, writing events to ob.
func NewStore(pool *pgxpool.Pool, ob *outbox.Outbox) (*Store, error) {
	if pool == nil || ob == nil {
		return nil, errors.New("order store: pool and outbox are required")
	}
	return &Store{pool: pool, ob: ob}, nil
}

// InTx returns the store bound to tx, a transaction the caller owns (the
// consumer's, which also holds the message's inbox claim).
func (s *Store) InTx(tx pgx.Tx) *TxStore { return &TxStore{tx: tx, ob: s.ob} }

// Create stores a new order and its events in a transaction of its own.
func (s *Store) Create(ctx context.Context, o *domain.Order, events []domain.Event) (bool, error) {
	var created bool
	err := s.ob.WithTx(ctx, s.pool, func(tx pgx.Tx) (err error) {
		created, err = s.InTx(tx).Create(ctx, o, events)
		return err
	})
	return created, err
}

// Update changes an order in a transaction of its own.
func (s *Store) Update(ctx context.Context, id domain.OrderID, fn app.UpdateFunc) error {
	return s.ob.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		return s.InTx(tx).Update(ctx, id, fn)
	})
}

// Get returns an order, read with its timeline in one round trip (and one
// implicit transaction, so the two agree).
func (s *Store) Get(ctx context.Context, id domain.OrderID) (*domain.Order, error) {
	return readOrder(ctx, s.pool, id, "")
}

// Revision returns the order's owner and revision in one small read.
func (s *Store) Revision(ctx context.Context, id domain.OrderID) (domain.UserID, int, error) {
	var (
		user     string
		revision int
	)
	err := s.pool.QueryRow(ctx, `SELECT user_id::text, revision FROM orders WHERE id = $1`, string(id)).Scan(&user, &revision)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, domain.ErrNotFound
	}
	if err != nil {
		return "", 0, fmt.Errorf("read revision of order %s: %w", id, err)
	}
	return domain.UserID(user), revision, nil
}

// ListByUser returns up to limit of the user's orders, newest first, after
// the cursor.
func (s *Store) ListByUser(ctx context.Context, user domain.UserID, after *app.Cursor, limit int) ([]*domain.Order, error) {
	var (
		rows pgx.Rows
		err  error
	)
	if after == nil {
		rows, err = s.pool.Query(ctx, selectOrder+`
			WHERE user_id = $1 ORDER BY placed_at DESC, id DESC LIMIT $2`, string(user), limit)
	} else {
		rows, err = s.pool.Query(ctx, selectOrder+`
			WHERE user_id = $1 AND (placed_at, id) < ($2, $3::uuid)
			ORDER BY placed_at DESC, id DESC LIMIT $4`, string(user), after.PlacedAt, string(after.ID), limit)
	}
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	var found []orderRow
	for rows.Next() {
		r, err := scanOrder(rows)
		if err != nil {
			return nil, err
		}
		found = append(found, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	return loadAll(ctx, s.pool, found)
}

// TxStore is the order store inside a transaction it does not own.
type TxStore struct {
	tx pgx.Tx
	ob *outbox.Outbox
}

// Create stores a new order, its timeline and its events. An order with the
// same id already stored wins: nothing is written and Create reports false.
func (s *TxStore) Create(ctx context.Context, o *domain.Order, events []domain.Event) (bool, error) {
	r, err := toRow(o.Snapshot())
	if err != nil {
		return false, err
	}
	tag, err := s.tx.Exec(ctx, `
		INSERT INTO orders (id, user_id, state, cancellation_reason, lines, total_minor, currency, shipping_address,
			payment_token, payment_deadline, payment_id, payment_amount_minor, payment_currency, shipment_id,
			refund_requested, refunded, stock_released, stock_returned, placed_at, updated_at, revision)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
		ON CONFLICT (id) DO NOTHING`,
		r.ID, r.UserID, r.State, r.Reason, r.Lines, r.TotalMinor, r.Currency, r.Address,
		r.PaymentToken, r.PaymentDeadline, r.PaymentID, r.PaymentAmountMinor, r.PaymentCurrency, r.ShipmentID,
		r.RefundRequested, r.Refunded, r.StockReleased, r.StockReturned, r.PlacedAt, r.UpdatedAt, r.Revision)
	if err != nil {
		return false, fmt.Errorf("insert order %s: %w", o.ID(), err)
	}
	if tag.RowsAffected() == 0 {
		forget(ctx, o.ID()) // another transaction created it: read it again
		return false, nil
	}
	remember(ctx, r, o.Timeline())
	b := &pgx.Batch{}
	queueTimeline(b, o.Timeline(), o.ID(), 0)
	if err := s.queueEvents(ctx, b, o, events); err != nil {
		return false, err
	}
	if err := outbox.SendAtCommit(ctx, s.tx, b); err != nil {
		return false, fmt.Errorf("write timeline and events of order %s: %w", o.ID(), err)
	}
	return true, nil
}

// Update locks the order's row for the rest of the transaction, so that a
// customer's cancellation and a saga reply of the same order take turns,
// then lets fn change it and writes what changed.
func (s *TxStore) Update(ctx context.Context, id domain.OrderID, fn app.UpdateFunc) error {
	o, err := s.lock(ctx, id)
	if err != nil {
		return err
	}
	before, seen := o.Revision(), len(o.Timeline())
	waitedForPayment := o.State() == domain.StateAwaitingPayment
	events, err := fn(o)
	if err != nil {
		return err
	}
	if o.Revision() == before {
		if len(events) > 0 {
			return fmt.Errorf("order %s: events without a change", id)
		}
		return nil
	}
	w, err := toRow(o.Snapshot())
	if err != nil {
		return err
	}
	// The row, the new timeline entries and the events travel with the
	// transaction's COMMIT. The update fails on the server unless it
	// changed the row at the revision read (order_written).
	b := &pgx.Batch{}
	b.Queue(`
		WITH written AS (
			UPDATE orders SET state = $2, cancellation_reason = $3, payment_token = $4, payment_deadline = $5,
				payment_id = $6, payment_amount_minor = $7, payment_currency = $8, shipment_id = $9,
				refund_requested = $10, refunded = $11, stock_released = $12, stock_returned = $13,
				updated_at = $14, revision = $15
			WHERE id = $1 AND revision = $16
			RETURNING 1)
		SELECT order_written((SELECT count(*) FROM written), $1, $16)`,
		w.ID, w.State, w.Reason, w.PaymentToken, w.PaymentDeadline,
		w.PaymentID, w.PaymentAmountMinor, w.PaymentCurrency, w.ShipmentID,
		w.RefundRequested, w.Refunded, w.StockReleased, w.StockReturned,
		w.UpdatedAt, w.Revision, before)
	queueTimeline(b, o.Timeline()[seen:], id, seen)
	if err := s.queueEvents(ctx, b, o, events); err != nil {
		return err
	}
	if err := outbox.SendAtCommit(ctx, s.tx, b); err != nil {
		return fmt.Errorf("update order %s: %w", id, err)
	}
	// An order that no longer waits for payment has no use for its payment
	// timeout: withdrawn, it costs no delivery and no read of the order
	// when the deadline passes. One already due arrives anyway and changes
	// nothing (the saga ignores a timeout outside awaiting_payment).
	if waitedForPayment && o.State() != domain.StateAwaitingPayment {
		timeout, err := paymentTimeoutID(o.ID())
		if err != nil {
			return err
		}
		if err := s.ob.Unschedule(ctx, s.tx, timeout); err != nil {
			return fmt.Errorf("withdraw payment timeout of order %s: %w", id, err)
		}
	}
	remember(ctx, w, o.Timeline())
	return nil
}

// lock locks the order's row for the rest of the transaction and reads the
// order with its timeline. In a consumer's transaction the first lock locks
// and reads every order the batch's messages name (a payload's order_id) in
// one round trip, and later locks are answered from what it read, as the
// transaction has written it since (remember): a batch of saga replies
// costs one read, not one per reply (see outbox.ReadBatched).
func (s *TxStore) lock(ctx context.Context, id domain.OrderID) (*domain.Order, error) {
	key, ok := ids.Canonical(string(id))
	if !ok {
		return readOrder(ctx, s.tx, id, " FOR UPDATE") // which fails, as it should
	}
	o, found, err := outbox.ReadBatched(ctx, lockedKey{}, key, orderIDOf, func(keys []string) (map[string]lockedOrder, error) {
		return readOrders(ctx, s.tx, keys, " FOR UPDATE")
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, domain.ErrNotFound
	}
	return toDomain(o.row, o.timeline)
}

// orderIDOf is the order a saga message's payload names.
func orderIDOf(p struct {
	OrderID string `json:"order_id"`
}) (string, bool) {
	return ids.Canonical(p.OrderID)
}

// lockedKey names the orders a consumer transaction has locked.
type lockedKey struct{}

// lockedOrder is an order's row and timeline as the transaction holds them.
type lockedOrder struct {
	row      orderRow
	timeline []domain.TimelineEntry
}

// remember notes r and timeline, just written, as the consumer
// transaction's order: as a read would return them, times at the
// database's microsecond precision (pgx truncates).
func remember(ctx context.Context, r orderRow, timeline []domain.TimelineEntry) {
	key, ok := ids.Canonical(r.ID)
	if !ok {
		return
	}
	r.ID = key
	r.PlacedAt, r.UpdatedAt = r.PlacedAt.Truncate(time.Microsecond), r.UpdatedAt.Truncate(time.Microsecond)
	if r.PaymentDeadline != nil {
		d := r.PaymentDeadline.Truncate(time.Microsecond)
		r.PaymentDeadline = &d
	}
	stored := make([]domain.TimelineEntry, len(timeline))
	for i, e := range timeline {
		stored[i] = domain.TimelineEntry{Type: e.Type, At: e.At.Truncate(time.Microsecond).UTC()}
	}
	outbox.RememberBatched(ctx, lockedKey{}, key, lockedOrder{row: r, timeline: stored})
}

// forget makes the consumer transaction's next lock of order id read it.
func forget(ctx context.Context, id domain.OrderID) {
	if key, ok := ids.Canonical(string(id)); ok {
		outbox.ForgetBatched[lockedOrder](ctx, lockedKey{}, key)
	}
}

// sendBatcher is a pool or a transaction.
type sendBatcher interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}

// readOrders reads orders with their timelines in one round trip (and one
// implicit transaction on a pool, so the two agree), by id. With locking
// " FOR UPDATE" the rows are locked in id order (so that two such reads
// cannot deadlock) and the timelines read once the locks are granted.
func readOrders(ctx context.Context, db sendBatcher, orderIDs []string, locking string) (_ map[string]lockedOrder, err error) {
	b := &pgx.Batch{}
	cond, arg := servicekit.KeysIn("id", "uuid", 1, orderIDs)
	b.Queue(selectOrder+` WHERE `+cond+` ORDER BY id`+locking, arg)
	b.Queue(selectTimelines(orderIDs))
	results := db.SendBatch(ctx, b)
	defer func() {
		if cerr := results.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("read orders %v: %w", orderIDs, cerr)
		}
	}()
	rows, err := results.Query()
	if err != nil {
		return nil, fmt.Errorf("read orders %v: %w", orderIDs, err)
	}
	found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (orderRow, error) { return scanOrder(row) })
	if err != nil {
		return nil, err
	}
	trows, err := results.Query()
	if err != nil {
		return nil, fmt.Errorf("read timelines: %w", err)
	}
	timelines, err := scanTimelines(trows)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]lockedOrder, len(found))
	for _, r := range found {
		byID[r.ID] = lockedOrder{row: r, timeline: timelines[r.ID]}
	}
	return byID, nil
}

// readOrder reads one order with its timeline (see readOrders), or
// domain.ErrNotFound.
func readOrder(ctx context.Context, db sendBatcher, id domain.OrderID, locking string) (*domain.Order, error) {
	found, err := readOrders(ctx, db, []string{string(id)}, locking)
	if err != nil {
		return nil, err
	}
	for _, o := range found { // the one order, under its canonical id
		return toDomain(o.row, o.timeline)
	}
	return nil, domain.ErrNotFound
}

// queueTimeline queues the insert of entries as seq from, from+1, ... in
// one statement.
func queueTimeline(b *pgx.Batch, entries []domain.TimelineEntry, id domain.OrderID, from int) {
	if len(entries) == 0 {
		return
	}
	types, ats := make([]string, len(entries)), make([]time.Time, len(entries))
	for i, e := range entries {
		types[i], ats[i] = string(e.Type), e.At
	}
	b.Queue(`
		INSERT INTO order_timeline (order_id, seq, type, at)
		SELECT $1, $2 + e.n - 1, e.type, e.at FROM unnest($3::text[], $4::timestamptz[]) WITH ORDINALITY AS e(type, at, n)`,
		string(id), from, types, ats)
}

// queueEvents queues the events' insert into the outbox; a payment timeout
// goes to the outbox's schedule at once.
func (s *TxStore) queueEvents(ctx context.Context, b *pgx.Batch, o *domain.Order, events []domain.Event) error {
	var now []outbox.Event
	for _, e := range events {
		msg, err := toMessage(o, e)
		if err != nil {
			return err
		}
		if due, ok := e.(domain.PaymentTimeoutDue); ok {
			if msg.ID, err = paymentTimeoutID(o.ID()); err != nil {
				return err
			}
			if err := s.ob.Schedule(ctx, s.tx, due.ExpiresAt, msg); err != nil {
				return fmt.Errorf("schedule payment timeout of order %s: %w", o.ID(), err)
			}
			continue
		}
		now = append(now, msg)
	}
	if err := s.ob.Queue(ctx, b, now...); err != nil {
		return fmt.Errorf("publish events of order %s: %w", o.ID(), err)
	}
	return nil
}

// paymentTimeoutID is the message id of order id's payment timeout, which
// the order can withdraw by it (an order asks for payment once). Message
// ids are UUIDv7 (the envelope's contract): this one keeps the order id's
// timestamp, so it sorts with the order's other messages, and takes the
// rest from a hash of the order id.
func paymentTimeoutID(id domain.OrderID) (string, error) {
	order, err := uuid.Parse(string(id))
	if err != nil {
		return "", fmt.Errorf("payment timeout of order %q: %w", id, err)
	}
	h := sha256.Sum256([]byte("payment-timeout:" + order.String()))
	var u uuid.UUID
	copy(u[:6], order[:6])
	copy(u[6:], h[:10])
	u[6] = 0x70 | u[6]&0x0f // version 7
	u[8] = 0x80 | u[8]&0x3f // RFC 9562 variant
	return u.String(), nil
}

// querier is what loading needs: a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

const selectOrder = `
	SELECT id::text, user_id::text, state, cancellation_reason, lines, total_minor, currency, shipping_address,
		payment_token, payment_deadline, payment_id, payment_amount_minor, payment_currency, shipment_id,
		refund_requested, refunded, stock_released, stock_returned, placed_at, updated_at, revision
	FROM orders`

func scanOrder(row pgx.Row) (orderRow, error) {
	var r orderRow
	err := row.Scan(&r.ID, &r.UserID, &r.State, &r.Reason, &r.Lines, &r.TotalMinor, &r.Currency, &r.Address,
		&r.PaymentToken, &r.PaymentDeadline, &r.PaymentID, &r.PaymentAmountMinor, &r.PaymentCurrency, &r.ShipmentID,
		&r.RefundRequested, &r.Refunded, &r.StockReleased, &r.StockReturned, &r.PlacedAt, &r.UpdatedAt, &r.Revision)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, domain.ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("read order: %w", err)
	}
	return r, nil
}

// loadAll reads the timelines of the orders in one query and rebuilds them.
func loadAll(ctx context.Context, q querier, found []orderRow) ([]*domain.Order, error) {
	ids := make([]string, 0, len(found))
	for _, r := range found {
		ids = append(ids, r.ID)
	}
	sql, arg := selectTimelines(ids)
	rows, err := q.Query(ctx, sql, arg)
	if err != nil {
		return nil, fmt.Errorf("read timelines: %w", err)
	}
	timelines, err := scanTimelines(rows)
	if err != nil {
		return nil, err
	}
	orders := make([]*domain.Order, 0, len(found))
	for _, r := range found {
		o, err := toDomain(r, timelines[r.ID])
		if err != nil {
			return nil, err
		}
		orders = append(orders, o)
	}
	return orders, nil
}

// selectTimelines reads the timelines of the orders ids, and its argument.
func selectTimelines(ids []string) (string, any) {
	cond, arg := servicekit.KeysIn("order_id", "uuid", 1, ids)
	return `SELECT order_id::text, type, at FROM order_timeline WHERE ` + cond + ` ORDER BY order_id, seq`, arg
}

// scanTimelines reads rows of selectTimelines into each order's timeline.
func scanTimelines(rows pgx.Rows) (map[string][]domain.TimelineEntry, error) {
	timelines := map[string][]domain.TimelineEntry{}
	var (
		id, typ string
		at      time.Time
	)
	_, err := pgx.ForEachRow(rows, []any{&id, &typ, &at}, func() error {
		timelines[id] = append(timelines[id], domain.TimelineEntry{Type: domain.TimelineType(typ), At: at.UTC()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read timelines: %w", err)
	}
	return timelines, nil
}

// orderRow is one row of orders.
type orderRow struct {
	ID, UserID, State  string
	Reason             *string
	Lines, Address     []byte
	TotalMinor         int64
	Currency           string
	PaymentToken       *string
	PaymentDeadline    *time.Time
	PaymentID          *string
	PaymentAmountMinor *int64
	PaymentCurrency    *string
	ShipmentID         *string
	RefundRequested    bool
	Refunded           bool
	StockReleased      bool
	StockReturned      bool
	PlacedAt           time.Time
	UpdatedAt          time.Time
	Revision           int
}

// lineJSON and addressJSON are the stored forms of lines and the address.
type lineJSON struct {
	ProductID      string `json:"product_id"`
	SKU            string `json:"sku"`
	Name           string `json:"name"`
	Quantity       int    `json:"quantity"`
	UnitPriceMinor int64  `json:"unit_price_minor"`
	Currency       string `json:"currency"`
}

type addressJSON struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

func toRow(s domain.Snapshot) (orderRow, error) {
	lines := make([]lineJSON, 0, len(s.Lines))
	for _, l := range s.Lines {
		lines = append(lines, lineJSON{ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity,
			UnitPriceMinor: l.UnitPrice.AmountMinor, Currency: l.UnitPrice.Currency})
	}
	linesJSON, err := json.Marshal(lines)
	if err != nil {
		return orderRow{}, fmt.Errorf("encode lines of order %s: %w", s.ID, err)
	}
	a := s.ShippingAddress
	addrJSON, err := json.Marshal(addressJSON{Name: a.Name, Line1: a.Line1, Line2: a.Line2, City: a.City, PostalCode: a.PostalCode, Country: a.Country})
	if err != nil {
		return orderRow{}, fmt.Errorf("encode address of order %s: %w", s.ID, err)
	}
	r := orderRow{
		ID: string(s.ID), UserID: string(s.UserID), State: string(s.State), Reason: optional(string(s.Reason)),
		Lines: linesJSON, Address: addrJSON, TotalMinor: s.Total.AmountMinor, Currency: s.Total.Currency,
		PaymentToken: optional(s.PaymentToken), PaymentID: optional(s.Payment.ID), ShipmentID: optional(s.ShipmentID),
		RefundRequested: s.RefundRequested, Refunded: s.Progress.Refunded,
		StockReleased: s.Progress.StockReleased, StockReturned: s.Progress.StockReturned,
		PlacedAt: s.PlacedAt, UpdatedAt: s.UpdatedAt, Revision: s.Revision,
	}
	if !s.PaymentDeadline.IsZero() {
		r.PaymentDeadline = &s.PaymentDeadline
	}
	if s.Payment.ID != "" {
		r.PaymentAmountMinor, r.PaymentCurrency = &s.Payment.Amount.AmountMinor, &s.Payment.Amount.Currency
	}
	return r, nil
}

func toDomain(r orderRow, timeline []domain.TimelineEntry) (*domain.Order, error) {
	var lines []lineJSON
	if err := json.Unmarshal(r.Lines, &lines); err != nil {
		return nil, fmt.Errorf("decode lines of order %s: %w", r.ID, err)
	}
	var a addressJSON
	if err := json.Unmarshal(r.Address, &a); err != nil {
		return nil, fmt.Errorf("decode address of order %s: %w", r.ID, err)
	}
	s := domain.Snapshot{
		ID: domain.OrderID(r.ID), UserID: domain.UserID(r.UserID), State: domain.State(r.State),
		Reason: domain.Reason(deref(r.Reason)), Total: domain.Money{AmountMinor: r.TotalMinor, Currency: r.Currency},
		ShippingAddress: domain.Address{Name: a.Name, Line1: a.Line1, Line2: a.Line2, City: a.City, PostalCode: a.PostalCode, Country: a.Country},
		PaymentToken:    deref(r.PaymentToken), ShipmentID: deref(r.ShipmentID), RefundRequested: r.RefundRequested,
		Progress: domain.Progress{Refunded: r.Refunded, StockReleased: r.StockReleased, StockReturned: r.StockReturned},
		Timeline: timeline, PlacedAt: r.PlacedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), Revision: r.Revision,
	}
	for _, l := range lines {
		s.Lines = append(s.Lines, domain.Line{ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity,
			UnitPrice: domain.Money{AmountMinor: l.UnitPriceMinor, Currency: l.Currency}})
	}
	if r.PaymentDeadline != nil {
		s.PaymentDeadline = r.PaymentDeadline.UTC()
	}
	if r.PaymentID != nil {
		s.Payment = domain.Payment{ID: *r.PaymentID, Amount: domain.Money{AmountMinor: deref(r.PaymentAmountMinor), Currency: deref(r.PaymentCurrency)}}
	}
	return domain.FromDatabase(s)
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
