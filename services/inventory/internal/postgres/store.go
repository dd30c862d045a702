// Package postgres stores inventory's stock and reservations in PostgreSQL.
// Every update is one transaction that locks what it reads, stores the
// domain's decision and writes the decision's events to the outbox, so state
// and events commit together. It must not make business decisions: those are
// the update functions' (app) and the domain's.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/inventory/internal/app"
	"github.com/shopmesh/shopmesh/services/inventory/internal/domain"
)

// db is what the store runs on: the pool, or the transaction of a consumed
// message (whose Begin opens a savepoint inside it).
type db interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Store is the PostgreSQL implementation of app.Repository.
type Store struct {
	db db
	ob *outbox.Outbox
}

var _ app.Repository = (*Store)(nil)

// New returns a store whose updates each run in their own transaction.
func New(pool *pgxpool.Pool, ob *outbox.Outbox) *Store {
	return &Store{db: pool, ob: ob}
}

// InTx returns a store whose updates run inside tx, the transaction in which
// the consumer claimed a message in the inbox: the message's effects, its
// events and its inbox claim then commit together.
func (s *Store) InTx(tx pgx.Tx) *Store {
	return &Store{db: tx, ob: s.ob}
}

// Stock implements app.Repository.
func (s *Store) Stock(ctx context.Context, productID string) (domain.Stock, error) {
	st, err := scanStock(s.db.QueryRow(ctx,
		`SELECT product_id, sku, on_hand, reserved FROM stock WHERE product_id = $1`, productID))
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Stock{}, domain.ErrNotFound
	}
	return st, err
}

// write sends b, the writes queued for what, with the events in one round
// trip. Stock levels are snapshots (a reader keeps the latest per product),
// so they are published latest-only: inside a consumer's batch a product
// whose level moves several times publishes its final level once.
func (s *Store) write(ctx context.Context, tx pgx.Tx, b *pgx.Batch, events []outbox.Event, what string) error {
	var now, levels []outbox.Event
	for _, e := range events {
		if e.Type == contracts.TypeStockLevelChangedV1 {
			levels = append(levels, e)
		} else {
			now = append(now, e)
		}
	}
	if err := s.ob.Queue(ctx, b, now...); err != nil {
		return err
	}
	if err := outbox.SendAtCommit(ctx, tx, b); err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	return s.ob.PublishLatest(ctx, tx, levels...)
}

// UpdateStock implements app.Repository.
func (s *Store) UpdateStock(ctx context.Context, productID string, fn app.StockUpdate) error {
	if _, err := domain.ParseID(productID); err != nil {
		return err
	}
	return s.ob.Within(ctx, s.db, func(tx pgx.Tx) error {
		st, err := scanStock(tx.QueryRow(ctx,
			`SELECT product_id, sku, on_hand, reserved FROM stock WHERE product_id = $1 FOR UPDATE`, productID))
		var current *domain.Stock
		switch {
		case err == nil:
			current = &st
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		var before domain.Stock
		if current != nil {
			before = *current
		}
		next, events, err := fn(current)
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		if next != nil {
			if current == nil {
				queueInsertStock(b, *next)
			} else if *next != before {
				queueStockUpdates(b, []domain.Stock{*next})
			}
		}
		return s.write(ctx, tx, b, events, "stock of "+productID)
	})
}

// UpdateReservation implements app.Repository. It locks the reservation row
// first and then the stock rows in product order, so two transactions never
// wait for each other's stock in opposite orders.
func (s *Store) UpdateReservation(ctx context.Context, orderID string, productIDs []string, fn app.ReservationUpdate) error {
	if _, err := domain.ParseID(orderID); err != nil {
		return err
	}
	return s.ob.Within(ctx, s.db, func(tx pgx.Tx) error {
		current, err := lockReservation(ctx, tx, orderID)
		if err != nil {
			return err
		}
		ids := slices.Clone(productIDs)
		if current != nil {
			for _, l := range current.Lines() {
				ids = append(ids, l.ProductID)
			}
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
		stock, before, err := lockStocks(ctx, tx, ids)
		if err != nil {
			return err
		}
		var prior domain.Status
		if current != nil {
			prior = current.Status()
		}
		next, events, err := fn(current, stock)
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		if next != nil {
			queueSaveReservation(b, *next, current == nil, prior)
		}
		var changed []domain.Stock
		for _, id := range ids {
			if st := stock[id]; st != nil && *st != before[id] {
				changed = append(changed, *st)
			}
		}
		queueStockUpdates(b, changed)
		return s.write(ctx, tx, b, events, "reservation of order "+orderID)
	})
}

func scanStock(row pgx.Row) (domain.Stock, error) {
	var (
		id, sku          string
		onHand, reserved int
	)
	if err := row.Scan(&id, &sku, &onHand, &reserved); err != nil {
		return domain.Stock{}, err
	}
	return toStock(id, sku, onHand, reserved)
}

func toStock(id, sku string, onHand, reserved int) (domain.Stock, error) {
	st, err := domain.StockFromDatabase(id, sku, onHand, reserved)
	if err != nil {
		return domain.Stock{}, fmt.Errorf("stored stock of %s: %w", id, err)
	}
	return st, nil
}

func queueInsertStock(b *pgx.Batch, st domain.Stock) {
	b.Queue(`INSERT INTO stock (product_id, sku, on_hand, reserved) VALUES ($1, $2, $3, $4)`,
		st.ProductID(), st.SKU(), st.OnHand(), st.Reserved())
}

// queueStockUpdates queues the write of the changed stock rows, in one
// statement.
func queueStockUpdates(b *pgx.Batch, changed []domain.Stock) {
	switch len(changed) {
	case 0:
		return
	case 1:
		st := changed[0]
		b.Queue(`UPDATE stock SET sku = $2, on_hand = $3, reserved = $4, updated_at = now() WHERE product_id = $1`,
			st.ProductID(), st.SKU(), st.OnHand(), st.Reserved())
		return
	}
	ids, skus := make([]string, len(changed)), make([]string, len(changed))
	onHand, reserved := make([]int, len(changed)), make([]int, len(changed))
	for i, st := range changed {
		ids[i], skus[i], onHand[i], reserved[i] = st.ProductID(), st.SKU(), st.OnHand(), st.Reserved()
	}
	b.Queue(`
		UPDATE stock s SET sku = c.sku, on_hand = c.on_hand, reserved = c.reserved, updated_at = now()
		FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int[]) AS c(product_id, sku, on_hand, reserved)
		WHERE s.product_id = c.product_id`, ids, skus, onHand, reserved)
}

// lockStocks locks the stock rows of ids in product order. Products without
// stock are absent from the result.
func lockStocks(ctx context.Context, tx pgx.Tx, ids []string) (domain.Stocks, map[string]domain.Stock, error) {
	stock, before := domain.Stocks{}, map[string]domain.Stock{}
	if len(ids) == 0 {
		return stock, before, nil
	}
	cond, arg := servicekit.KeysIn("product_id", "", 1, ids)
	rows, err := tx.Query(ctx, `SELECT product_id, sku, on_hand, reserved FROM stock
		WHERE `+cond+` ORDER BY product_id FOR UPDATE`, arg)
	if err != nil {
		return nil, nil, fmt.Errorf("lock stock: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		st, err := scanStock(rows)
		if err != nil {
			return nil, nil, err
		}
		before[st.ProductID()] = st
		stock[st.ProductID()] = &st
	}
	return stock, before, rows.Err()
}

func lockReservation(ctx context.Context, tx pgx.Tx, orderID string) (*domain.Reservation, error) {
	// One round trip: the lines are read after the row lock is granted.
	b := &pgx.Batch{}
	var status domain.Status
	found := true
	b.Queue(`SELECT status FROM reservations WHERE order_id = $1 FOR UPDATE`, orderID).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			found = false
			return nil
		}
		return err
	})
	var lines []domain.Line
	b.Queue(`SELECT product_id, quantity FROM reservation_lines WHERE order_id = $1 ORDER BY product_id`, orderID).Query(func(rows pgx.Rows) (err error) {
		lines, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.Line, error) {
			var l domain.Line
			err := row.Scan(&l.ProductID, &l.Quantity)
			return l, err
		})
		return err
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("lock reservation of order %s: %w", orderID, err)
	}
	if !found {
		return nil, nil
	}
	res, err := domain.ReservationFromDatabase(orderID, status, lines)
	if err != nil {
		return nil, fmt.Errorf("stored reservation of order %s: %w", orderID, err)
	}
	return &res, nil
}

// queueSaveReservation queues the insert of a new reservation with its
// lines, or the new status of an existing one (its lines never change).
func queueSaveReservation(b *pgx.Batch, r domain.Reservation, isNew bool, prior domain.Status) {
	if !isNew {
		if r.Status() != prior {
			b.Queue(`UPDATE reservations SET status = $2, updated_at = now() WHERE order_id = $1`, r.OrderID(), r.Status())
		}
		return
	}
	b.Queue(`INSERT INTO reservations (order_id, status) VALUES ($1, $2)`, r.OrderID(), r.Status())
	lines := r.Lines()
	products, quantities := make([]string, len(lines)), make([]int, len(lines))
	for i, l := range lines {
		products[i], quantities[i] = l.ProductID, l.Quantity
	}
	b.Queue(`
		INSERT INTO reservation_lines (order_id, product_id, quantity)
		SELECT $1, l.product_id, l.quantity FROM unnest($2::uuid[], $3::int[]) AS l(product_id, quantity)`,
		r.OrderID(), products, quantities)
}
