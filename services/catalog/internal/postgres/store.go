// Package postgres stores the catalogue in PostgreSQL. Every change is one
// transaction that locks the product it reads, stores the domain's decision
// and writes the decision's events to the outbox. It must not make business
// decisions: those are the update functions' (app) and the domain's.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/catalog/internal/app"
	"github.com/shopmesh/shopmesh/services/catalog/internal/domain"
)

// db is what the store runs on: the pool, or the transaction of a consumed
// message (whose Begin opens a savepoint inside it).
type db interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
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

const productColumns = `id, sku, name, description, price_minor, currency, stock_available, stock_as_of`

// Create implements app.Repository.
func (s *Store) Create(ctx context.Context, p domain.Product, events []outbox.Event) error {
	return s.ob.Within(ctx, s.db, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO products (`+productColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, toRow(p)...)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "products_sku_key" {
			return domain.ErrSKUTaken
		}
		if err != nil {
			return fmt.Errorf("insert product: %w", err)
		}
		return s.ob.Publish(ctx, tx, events...)
	})
}

// Update implements app.Repository.
func (s *Store) Update(ctx context.Context, id string, fn app.ProductUpdate) (domain.Product, error) {
	var out domain.Product
	err := s.ob.Within(ctx, s.db, func(tx pgx.Tx) error {
		p, err := scanProduct(tx.QueryRow(ctx, `SELECT `+productColumns+` FROM products WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		before := p
		events, err := fn(&p)
		if err != nil {
			return err
		}
		if p != before {
			// In a consumer's transaction the write travels with the next
			// statement or the COMMIT (outbox.SendAtCommit) instead of a
			// round trip of its own; elsewhere it is sent at once.
			b := &pgx.Batch{}
			b.Queue(`UPDATE products SET sku = $2, name = $3, description = $4, price_minor = $5,
				currency = $6, stock_available = $7, stock_as_of = $8, updated_at = now() WHERE id = $1`, toRow(p)...)
			if err := outbox.SendAtCommit(ctx, tx, b); err != nil {
				return fmt.Errorf("update product: %w", err)
			}
		}
		out = p
		return s.ob.Publish(ctx, tx, events...)
	})
	return out, err
}

// Product implements app.Repository.
func (s *Store) Product(ctx context.Context, id string) (domain.Product, error) {
	return scanProduct(s.db.QueryRow(ctx, `SELECT `+productColumns+` FROM products WHERE id = $1`, id))
}

// Products implements app.Repository. The search is a case-insensitive
// substring match; the catalogue is small enough that a scan is fine (a
// trigram index would be the next step).
func (s *Store) Products(ctx context.Context, q app.Query) (app.Page, error) {
	pattern := "%" + escapeLike(strings.ToLower(q.Search)) + "%"
	rows, err := s.db.Query(ctx, `SELECT `+productColumns+`, count(*) OVER () FROM products
		WHERE $1 = '' OR lower(name) LIKE $2 OR lower(sku) LIKE $2 OR lower(description) LIKE $2
		ORDER BY name, id LIMIT $3 OFFSET $4`, q.Search, pattern, q.Limit, q.Offset)
	if err != nil {
		return app.Page{}, fmt.Errorf("query products: %w", err)
	}
	defer rows.Close()
	var page app.Page
	for rows.Next() {
		p, total, err := scanListed(rows)
		if err != nil {
			return app.Page{}, err
		}
		page.Products = append(page.Products, p)
		page.Total = total
	}
	if err := rows.Err(); err != nil {
		return app.Page{}, fmt.Errorf("query products: %w", err)
	}
	if len(page.Products) == 0 && q.Offset > 0 {
		// Past the end the window function has no row to count on.
		if err := s.db.QueryRow(ctx, `SELECT count(*) FROM products
			WHERE $1 = '' OR lower(name) LIKE $2 OR lower(sku) LIKE $2 OR lower(description) LIKE $2`,
			q.Search, pattern).Scan(&page.Total); err != nil {
			return app.Page{}, fmt.Errorf("count products: %w", err)
		}
	}
	return page, nil
}

// escapeLike makes s match itself literally in a LIKE pattern.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func toRow(p domain.Product) []any {
	var asOf *time.Time
	if t := p.StockAsOf(); !t.IsZero() {
		asOf = &t
	}
	return []any{p.ID(), p.SKU(), p.Name(), p.Description(), p.Price().AmountMinor(), p.Price().Currency(), p.Stock(), asOf}
}

type productRow struct {
	id, sku, name, description, currency string
	priceMinor                           int64
	stock                                int
	stockAsOf                            *time.Time
}

func (r *productRow) dest() []any {
	return []any{&r.id, &r.sku, &r.name, &r.description, &r.priceMinor, &r.currency, &r.stock, &r.stockAsOf}
}

func (r productRow) toDomain() (domain.Product, error) {
	var asOf time.Time
	if r.stockAsOf != nil {
		asOf = *r.stockAsOf
	}
	return domain.ProductFromDatabase(r.id, r.sku, r.name, r.description, r.priceMinor, r.currency, r.stock, asOf)
}

func scanProduct(row pgx.Row) (domain.Product, error) {
	var r productRow
	if err := row.Scan(r.dest()...); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return domain.Product{}, domain.ErrNotFound
		}
		return domain.Product{}, fmt.Errorf("read product: %w", err)
	}
	return r.toDomain()
}

func scanListed(rows pgx.Rows) (domain.Product, int, error) {
	var (
		r     productRow
		total int
	)
	if err := rows.Scan(append(r.dest(), &total)...); err != nil {
		return domain.Product{}, 0, fmt.Errorf("read product: %w", err)
	}
	p, err := r.toDomain()
	return p, total, err
}
