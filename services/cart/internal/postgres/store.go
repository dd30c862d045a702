// Package postgres stores carts, checkouts and the cart's view of products
// in PostgreSQL. Every change is one transaction that locks what it reads,
// stores the domain's decision and writes the decision's events to the
// outbox. It must not make business decisions: those are the update
// functions' (app) and the domain's.
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
	"github.com/shopmesh/shopmesh/services/cart/internal/app"
	"github.com/shopmesh/shopmesh/services/cart/internal/domain"
)

// db is what the store runs on: the pool, or the transaction of a consumed
// message (whose Begin opens a savepoint inside it).
type db interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Store is the PostgreSQL implementation of app.Repository.
type Store struct {
	db db
	ob *outbox.Outbox
}

var _ app.Repository = (*Store)(nil)

// New returns a store whose changes each run in their own transaction.
func New(pool *pgxpool.Pool, ob *outbox.Outbox) *Store {
	return &Store{db: pool, ob: ob}
}

// InTx returns a store whose changes run inside tx, the transaction in which
// the consumer claimed a message in the inbox.
func (s *Store) InTx(tx pgx.Tx) *Store {
	return &Store{db: tx, ob: s.ob}
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Cart implements app.Repository.
func (s *Store) Cart(ctx context.Context, userID string) (domain.Cart, error) {
	lines, err := loadLines(ctx, s.db, userID)
	if err != nil {
		return domain.Cart{}, err
	}
	return toCart(userID, lines)
}

// UpdateCart implements app.Repository.
func (s *Store) UpdateCart(ctx context.Context, userID, productID string, fn app.CartUpdate) (domain.Cart, error) {
	var out domain.Cart
	err := s.ob.Within(ctx, s.db, func(tx pgx.Tx) error {
		var (
			p       *domain.Product
			readErr error
		)
		also := func(b *pgx.Batch) {
			if productID == "" {
				return
			}
			b.Queue(`SELECT `+productColumns+` FROM products WHERE id = $1 FOR SHARE`, productID).QueryRow(func(row pgx.Row) error {
				product, err := scanProduct(row)
				if err != nil {
					readErr = err // domain.ErrProductNotFound is the caller's answer, not a failed batch
					return nil
				}
				p = &product
				return nil
			})
		}
		c, before, err := lockCart(ctx, tx, userID, also)
		if err != nil {
			return err
		}
		if readErr != nil {
			return readErr
		}
		events, err := fn(&c, p)
		if err != nil {
			return err
		}
		if err := saveLines(ctx, tx, userID, before, c.Lines()); err != nil {
			return err
		}
		out = c
		return s.ob.Publish(ctx, tx, events...)
	})
	return out, err
}

// Checkout implements app.Repository.
func (s *Store) Checkout(ctx context.Context, userID, key string, fn app.CheckoutUpdate) (domain.Checkout, error) {
	var out domain.Checkout
	err := s.ob.Within(ctx, s.db, func(tx pgx.Tx) error {
		prior := &domain.Checkout{UserID: userID, Key: key}
		c, before, err := lockCart(ctx, tx, userID, func(b *pgx.Batch) {
			b.Queue(`SELECT request_hash, order_id, created_at FROM checkouts WHERE user_id = $1 AND idempotency_key = $2`,
				userID, key).QueryRow(func(row pgx.Row) error {
				err := row.Scan(&prior.RequestHash, &prior.OrderID, &prior.CreatedAt)
				switch {
				case errors.Is(err, pgx.ErrNoRows):
					prior = nil
				case err != nil:
					return fmt.Errorf("read checkout: %w", err)
				}
				return nil
			})
		})
		if err != nil {
			return err
		}
		record, events, err := fn(&c, prior)
		if err != nil {
			return err
		}
		if record == nil {
			if prior == nil {
				return errors.New("checkout recorded nothing and found nothing recorded")
			}
			out = *prior
			return nil
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO checkouts (user_id, idempotency_key, request_hash, order_id, created_at)
			VALUES ($1, $2, $3, $4, $5)`, userID, key, record.RequestHash, record.OrderID, record.CreatedAt)
		if err := outbox.SendAtCommit(ctx, tx, b); err != nil {
			return fmt.Errorf("record checkout: %w", err)
		}
		if err := saveLines(ctx, tx, userID, before, c.Lines()); err != nil {
			return err
		}
		out = *record
		return s.ob.Publish(ctx, tx, events...)
	})
	return out, err
}

// PruneCheckouts implements app.Repository.
func (s *Store) PruneCheckouts(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.db.Exec(ctx, `DELETE FROM checkouts WHERE created_at < $1`, before)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// AddProduct implements app.Repository.
func (s *Store) AddProduct(ctx context.Context, p domain.Product) error {
	_, err := s.db.Exec(ctx, `INSERT INTO products (`+productColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (id) DO NOTHING`, productRow(p)...)
	if err != nil {
		return fmt.Errorf("insert product: %w", err)
	}
	return nil
}

// UpdateProduct implements app.Repository. It takes the product's row lock
// before touching any cart line, the order UpdateCart reads them in, so the
// two never wait for each other in a circle.
func (s *Store) UpdateProduct(ctx context.Context, id string, fn app.ProductUpdate) error {
	return s.ob.Within(ctx, s.db, func(tx pgx.Tx) error {
		p, err := scanProduct(tx.QueryRow(ctx, `SELECT `+productColumns+` FROM products WHERE id = $1 FOR NO KEY UPDATE`, id))
		if err != nil {
			return err
		}
		refresh, err := fn(&p)
		if err != nil {
			return err
		}
		if !refresh.Price && !refresh.Details {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE products SET sku = $2, name = $3, price_minor = $4, currency = $5,
			details_as_of = $6, price_as_of = $7 WHERE id = $1`, productRow(p)...); err != nil {
			return fmt.Errorf("update product: %w", err)
		}
		if refresh.Price {
			if _, err := tx.Exec(ctx, `UPDATE cart_lines SET unit_price_minor = $2, currency = $3 WHERE product_id = $1`,
				p.ID(), p.Price().AmountMinor, p.Price().Currency); err != nil {
				return fmt.Errorf("reprice cart lines: %w", err)
			}
		}
		if refresh.Details {
			if _, err := tx.Exec(ctx, `UPDATE cart_lines SET sku = $2, name = $3 WHERE product_id = $1`,
				p.ID(), p.SKU(), p.Name()); err != nil {
				return fmt.Errorf("rename cart lines: %w", err)
			}
		}
		return nil
	})
}

const productColumns = `id, sku, name, price_minor, currency, details_as_of, price_as_of`

func productRow(p domain.Product) []any {
	return []any{p.ID(), p.SKU(), p.Name(), p.Price().AmountMinor, p.Price().Currency, p.DetailsAsOf(), p.PriceAsOf()}
}

func scanProduct(row pgx.Row) (domain.Product, error) {
	var (
		id, sku, name string
		price         domain.Money
		details, at   time.Time
	)
	if err := row.Scan(&id, &sku, &name, &price.AmountMinor, &price.Currency, &details, &at); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return domain.Product{}, domain.ErrProductNotFound
		}
		return domain.Product{}, fmt.Errorf("read product: %w", err)
	}
	p, err := domain.ProductFromDatabase(id, sku, name, price, details, at)
	if err != nil {
		return domain.Product{}, fmt.Errorf("stored product: %w", err)
	}
	return p, nil
}

// lockCart creates the user's cart row if needed and locks it, then loads
// the lines, in one round trip with what also queues (reads with result
// callbacks, run after the lock is granted); it returns the cart and its
// lines as loaded.
func lockCart(ctx context.Context, tx pgx.Tx, userID string, also func(*pgx.Batch)) (domain.Cart, []domain.Line, error) {
	var lines []domain.Line
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO carts (user_id) VALUES ($1)
		ON CONFLICT (user_id) DO UPDATE SET updated_at = now()`, userID)
	b.Queue(selectLines, userID).Query(func(rows pgx.Rows) (err error) {
		lines, err = collectLines(rows)
		return err
	})
	if also != nil {
		also(b)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return domain.Cart{}, nil, fmt.Errorf("lock cart: %w", err)
	}
	c, err := toCart(userID, lines)
	return c, lines, err
}

const selectLines = `SELECT product_id, sku, name, quantity, unit_price_minor, currency, added_at
	FROM cart_lines WHERE user_id = $1 ORDER BY added_at, product_id`

func loadLines(ctx context.Context, q querier, userID string) ([]domain.Line, error) {
	rows, err := q.Query(ctx, selectLines, userID)
	if err != nil {
		return nil, fmt.Errorf("read cart lines: %w", err)
	}
	return collectLines(rows)
}

func collectLines(rows pgx.Rows) ([]domain.Line, error) {
	lines, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.Line, error) {
		var l domain.Line
		err := row.Scan(&l.ProductID, &l.SKU, &l.Name, &l.Quantity, &l.UnitPrice.AmountMinor, &l.UnitPrice.Currency, &l.AddedAt)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("read cart lines: %w", err)
	}
	return lines, nil
}

func toCart(userID string, lines []domain.Line) (domain.Cart, error) {
	c, err := domain.CartFromDatabase(userID, lines)
	if err != nil {
		return domain.Cart{}, fmt.Errorf("stored cart: %w", err)
	}
	return c, nil
}

// saveLines writes the difference between the lines loaded and the lines
// after a change, in one batch: one round trip however many lines changed.
func saveLines(ctx context.Context, tx pgx.Tx, userID string, before, after []domain.Line) error {
	old := make(map[string]domain.Line, len(before))
	for _, l := range before {
		old[l.ProductID] = l
	}
	b := &pgx.Batch{}
	for _, l := range after {
		prev, ok := old[l.ProductID]
		delete(old, l.ProductID)
		if ok && sameLine(prev, l) {
			continue
		}
		b.Queue(`INSERT INTO cart_lines (user_id, product_id, sku, name, quantity, unit_price_minor, currency, added_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (user_id, product_id) DO UPDATE SET sku = EXCLUDED.sku, name = EXCLUDED.name, quantity = EXCLUDED.quantity,
				unit_price_minor = EXCLUDED.unit_price_minor, currency = EXCLUDED.currency`,
			userID, l.ProductID, l.SKU, l.Name, l.Quantity, l.UnitPrice.AmountMinor, l.UnitPrice.Currency, l.AddedAt)
	}
	if len(old) > 0 {
		gone := make([]string, 0, len(old))
		for id := range old {
			gone = append(gone, id)
		}
		b.Queue(`DELETE FROM cart_lines WHERE user_id = $1 AND product_id = ANY($2)`, userID, gone)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := outbox.SendAtCommit(ctx, tx, b); err != nil {
		return fmt.Errorf("save cart lines: %w", err)
	}
	return nil
}

func sameLine(a, b domain.Line) bool {
	return a.ProductID == b.ProductID && a.SKU == b.SKU && a.Name == b.Name && a.Quantity == b.Quantity &&
		a.UnitPrice == b.UnitPrice && a.AddedAt.Equal(b.AddedAt)
}
