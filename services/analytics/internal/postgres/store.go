// Package postgres is the analytics service's PostgreSQL adapter: it adds
// each event's contribution to the aggregates inside the event's inbox
// transaction, reads them back for reports, and resets them for a rebuild.
// The service publishes no events, so no outbox is written here. It must
// not decide what an event contributes.
package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/services/analytics/internal/app"
	"github.com/shopmesh/shopmesh/services/analytics/internal/domain"
)

// Store reads the aggregates.
type Store struct {
	pool *pgxpool.Pool
}

var _ app.Reports = (*Store)(nil)

// NewStore returns a store on pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// InTx returns the store's view inside tx, a consumer's transaction.
func (s *Store) InTx(tx pgx.Tx) app.Tx { return txStore{tx} }

type txStore struct{ tx pgx.Tx }

// Apply adds a contribution to the aggregates in one round trip. Tables are
// written in one fixed order and rows within a table in key order (the
// contribution is sorted), so concurrent events never deadlock.
func (t txStore) Apply(ctx context.Context, c *domain.Contribution) error {
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO event_counts (day, event_type, events) VALUES ($1, $2, 1)
		ON CONFLICT (day, event_type) DO UPDATE SET events = event_counts.events + 1`, c.Day, c.EventType)
	if c.CartTouchedBy != "" {
		b.Queue(`INSERT INTO cart_touches (day, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, c.Day, c.CartTouchedBy)
	}
	if c.Sale != nil {
		b.Queue(`INSERT INTO daily_sales (day, currency, orders_confirmed, revenue_minor) VALUES ($1, $2, 1, $3)
			ON CONFLICT (day, currency) DO UPDATE SET orders_confirmed = daily_sales.orders_confirmed + 1,
				revenue_minor = daily_sales.revenue_minor + EXCLUDED.revenue_minor`, c.Day, c.Sale.Currency, c.Sale.AmountMinor)
	}
	if c.Refund != nil {
		b.Queue(`INSERT INTO daily_sales (day, currency, refunds, refunded_minor) VALUES ($1, $2, 1, $3)
			ON CONFLICT (day, currency) DO UPDATE SET refunds = daily_sales.refunds + 1,
				refunded_minor = daily_sales.refunded_minor + EXCLUDED.refunded_minor`, c.Day, c.Refund.Currency, c.Refund.AmountMinor)
	}
	if c.Outcome != "" {
		b.Queue(`INSERT INTO order_outcomes (day, outcome, reason, orders) VALUES ($1, $2, $3, 1)
			ON CONFLICT (day, outcome, reason) DO UPDATE SET orders = order_outcomes.orders + 1`, c.Day, string(c.Outcome), c.Reason)
	}
	for _, d := range c.Descriptions {
		if d.SKU != "" {
			b.Queue(`INSERT INTO products AS p (product_id, sku, sku_version) VALUES ($1, $2, $3)
				ON CONFLICT (product_id) DO UPDATE SET sku = EXCLUDED.sku, sku_version = EXCLUDED.sku_version
				WHERE p.sku_version IS NULL OR p.sku_version < EXCLUDED.sku_version`, d.ProductID, d.SKU, d.Version)
		}
		if d.Name != "" {
			b.Queue(`INSERT INTO products AS p (product_id, name, name_version) VALUES ($1, $2, $3)
				ON CONFLICT (product_id) DO UPDATE SET name = EXCLUDED.name, name_version = EXCLUDED.name_version
				WHERE p.name_version IS NULL OR p.name_version < EXCLUDED.name_version`, d.ProductID, d.Name, d.Version)
		}
	}
	for _, s := range c.Products {
		b.Queue(`INSERT INTO product_sales (day, product_id, currency, units, revenue_minor) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (day, product_id, currency) DO UPDATE SET units = product_sales.units + EXCLUDED.units,
				revenue_minor = product_sales.revenue_minor + EXCLUDED.revenue_minor`,
			c.Day, s.ProductID, s.Currency, s.Units, s.RevenueMinor)
	}
	for _, m := range c.Stock {
		n := m.Counts
		b.Queue(`INSERT INTO stock_movements (day, product_id, reserved, released, committed, returned, adjusted,
				reservation_failures, low_stock_alerts)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (day, product_id) DO UPDATE SET
				reserved = stock_movements.reserved + EXCLUDED.reserved,
				released = stock_movements.released + EXCLUDED.released,
				committed = stock_movements.committed + EXCLUDED.committed,
				returned = stock_movements.returned + EXCLUDED.returned,
				adjusted = stock_movements.adjusted + EXCLUDED.adjusted,
				reservation_failures = stock_movements.reservation_failures + EXCLUDED.reservation_failures,
				low_stock_alerts = stock_movements.low_stock_alerts + EXCLUDED.low_stock_alerts`,
			c.Day, m.ProductID, n[domain.StockReserved], n[domain.StockReleased], n[domain.StockCommitted],
			n[domain.StockReturned], n[domain.StockAdjusted], n[domain.StockReservationFailed], n[domain.StockLowAlert])
	}
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("apply %s: %w", c.EventType, err)
	}
	return nil
}

// Reset empties every aggregate inside tx, so that replaying history
// rebuilds them; the caller forgets the consumer's inbox keys in the same
// transaction.
func Reset(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `TRUNCATE event_counts, cart_touches, daily_sales, order_outcomes, product_sales, products, stock_movements`)
	if err != nil {
		return fmt.Errorf("reset the analytics read model: %w", err)
	}
	return nil
}

// Sales returns the per-day, per-currency sales of a period.
func (s *Store) Sales(ctx context.Context, p domain.Period) ([]domain.Sales, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT day, currency, orders_confirmed, revenue_minor, refunds, refunded_minor FROM daily_sales
		WHERE day BETWEEN $1 AND $2 ORDER BY day, currency`, p.From, p.To)
	if err != nil {
		return nil, fmt.Errorf("read sales: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.Sales, error) {
		var d domain.Sales
		err := row.Scan(&d.Day, &d.Currency, &d.OrdersConfirmed, &d.RevenueMinor, &d.Refunds, &d.RefundedMinor)
		d.Day = d.Day.UTC()
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("read sales: %w", err)
	}
	return out, nil
}

// Outcomes returns how orders ended in a period.
func (s *Store) Outcomes(ctx context.Context, p domain.Period) (domain.Outcomes, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT outcome, reason, sum(orders)::bigint FROM order_outcomes
		WHERE day BETWEEN $1 AND $2 GROUP BY outcome, reason`, p.From, p.To)
	if err != nil {
		return domain.Outcomes{}, fmt.Errorf("read outcomes: %w", err)
	}
	o := domain.Outcomes{ByReason: map[string]int64{}}
	var outcome, reason string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&outcome, &reason, &n}, func() error {
		switch domain.Outcome(outcome) {
		case domain.OutcomeCompleted:
			o.Completed += n
		case domain.OutcomeCancelled:
			o.Cancelled += n
			o.ByReason[reason] += n
		}
		return nil
	})
	if err != nil {
		return domain.Outcomes{}, fmt.Errorf("read outcomes: %w", err)
	}
	return o, nil
}

// TopProducts ranks products by confirmed units, then revenue.
func (s *Store) TopProducts(ctx context.Context, p domain.Period, limit int) ([]domain.ProductRank, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT ps.product_id::text, coalesce(pr.sku, ''), coalesce(pr.name, ''), ps.currency,
		       sum(ps.units)::bigint AS units, sum(ps.revenue_minor)::bigint AS revenue
		FROM product_sales ps LEFT JOIN products pr ON pr.product_id = ps.product_id
		WHERE ps.day BETWEEN $1 AND $2
		GROUP BY ps.product_id, pr.sku, pr.name, ps.currency
		ORDER BY units DESC, revenue DESC, ps.product_id, ps.currency
		LIMIT $3`, p.From, p.To, limit)
	if err != nil {
		return nil, fmt.Errorf("read top products: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.ProductRank, error) {
		var r domain.ProductRank
		err := row.Scan(&r.ProductID, &r.SKU, &r.Name, &r.Currency, &r.Units, &r.RevenueMinor)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("read top products: %w", err)
	}
	return out, nil
}

// Stock sums products' stock movements, the most committed first.
func (s *Store) Stock(ctx context.Context, p domain.Period, limit int) ([]domain.StockSummary, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT m.product_id::text, coalesce(pr.sku, ''),
		       sum(m.reserved)::bigint, sum(m.released)::bigint, sum(m.committed)::bigint AS committed,
		       sum(m.returned)::bigint, sum(m.adjusted)::bigint, sum(m.reservation_failures)::bigint,
		       sum(m.low_stock_alerts)::bigint
		FROM stock_movements m LEFT JOIN products pr ON pr.product_id = m.product_id
		WHERE m.day BETWEEN $1 AND $2
		GROUP BY m.product_id, pr.sku
		ORDER BY committed DESC, m.product_id
		LIMIT $3`, p.From, p.To, limit)
	if err != nil {
		return nil, fmt.Errorf("read stock movements: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.StockSummary, error) {
		var r domain.StockSummary
		n := &r.Counts
		err := row.Scan(&r.ProductID, &r.SKU, &n[domain.StockReserved], &n[domain.StockReleased], &n[domain.StockCommitted],
			&n[domain.StockReturned], &n[domain.StockAdjusted], &n[domain.StockReservationFailed], &n[domain.StockLowAlert])
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("read stock movements: %w", err)
	}
	return out, nil
}

// Funnel counts the funnel's stages in a period: distinct users whose cart
// changed, and the events of each stage's type family (the type without its
// version), so events counted under an older version before an upgrade
// still count.
func (s *Store) Funnel(ctx context.Context, p domain.Period, stages app.FunnelStages) (domain.Funnel, error) {
	var f domain.Funnel
	err := s.pool.QueryRow(ctx, `
		SELECT (SELECT count(DISTINCT user_id) FROM cart_touches WHERE day BETWEEN $1 AND $2),
		       coalesce(sum(events) FILTER (WHERE family = $3), 0)::bigint,
		       coalesce(sum(events) FILTER (WHERE family = $4), 0)::bigint,
		       coalesce(sum(events) FILTER (WHERE family = $5), 0)::bigint,
		       coalesce(sum(events) FILTER (WHERE family = $6), 0)::bigint
		FROM (SELECT events, regexp_replace(event_type, '\.v[0-9]+$', '') AS family
		      FROM event_counts WHERE day BETWEEN $1 AND $2) c`,
		p.From, p.To, family(stages.Checkout), family(stages.Placed), family(stages.Confirmed), family(stages.Delivered)).
		Scan(&f.CartsTouched, &f.Checkouts, &f.Placed, &f.Confirmed, &f.Delivered)
	if err != nil {
		return domain.Funnel{}, fmt.Errorf("read funnel: %w", err)
	}
	return f, nil
}

// family is an event type without its version: order.placed.v2 -> order.placed.
func family(eventType string) string {
	if i := strings.LastIndex(eventType, ".v"); i > 0 {
		return eventType[:i]
	}
	return eventType
}
