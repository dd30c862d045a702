// Package postgres is the analytics service's PostgreSQL adapter: it adds
// each event's contribution to the aggregates inside the event's inbox
// transaction (summed over the transaction's events, written before its
// commit), reads them back for reports, and resets them for a rebuild.
// The service publishes no events, so no outbox is written here. It must
// not decide what an event contributes.
package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/outbox"
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

// Apply adds a contribution to the aggregates. Inside a consumer's
// transaction it adds to the transaction's totals, which are written once,
// before the commit (one write per row a batch of events touches instead of
// one per event and row); elsewhere it writes at once.
func (t txStore) Apply(ctx context.Context, c *domain.Contribution) error {
	return outbox.Accumulate(ctx, t.tx, totalsKey{}, newTotalsWriter, func(w *totalsWriter) { w.totals.Add(c) })
}

type totalsKey struct{}

// totalsWriter writes a transaction's totals.
type totalsWriter struct{ totals *domain.Totals }

var _ outbox.BatchDeferred = (*totalsWriter)(nil)

func newTotalsWriter() *totalsWriter { return &totalsWriter{totals: domain.NewTotals()} }

// Flush writes the totals in one round trip, one statement per table.
func (w *totalsWriter) Flush(ctx context.Context, tx pgx.Tx) error {
	b := &pgx.Batch{}
	if err := w.QueueFlush(b); err != nil || b.Len() == 0 {
		return err
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write analytics totals: %w", err)
	}
	return nil
}

// QueueFlush queues the totals' writes, one statement per table, to travel
// with the consumer transaction's COMMIT. Tables are written in one fixed
// order and rows in key order (the totals' order), so concurrent writers
// never deadlock.
func (w *totalsWriter) QueueFlush(b *pgx.Batch) error {
	queueEventCounts(b, w.totals.EventCounts())
	queueCartTouches(b, w.totals.CartTouches())
	queueDailySales(b, w.totals.DailySales())
	queueOutcomes(b, w.totals.OutcomeCounts())
	queueNamings(b, w.totals.Namings())
	queueProductSales(b, w.totals.ProductSales())
	queueStockMoves(b, w.totals.StockMoves())
	return nil
}

func queueEventCounts(b *pgx.Batch, rows []domain.EventCount) {
	if len(rows) == 0 {
		return
	}
	days, types, n := make([]time.Time, len(rows)), make([]string, len(rows)), make([]int64, len(rows))
	for i, r := range rows {
		days[i], types[i], n[i] = r.Day, r.EventType, r.Events
	}
	b.Queue(`INSERT INTO event_counts (day, event_type, events)
		SELECT r.day, r.event_type, r.events FROM unnest($1::date[], $2::text[], $3::bigint[]) WITH ORDINALITY AS r(day, event_type, events, i)
		ORDER BY r.i
		ON CONFLICT (day, event_type) DO UPDATE SET events = event_counts.events + EXCLUDED.events`, days, types, n)
}

func queueCartTouches(b *pgx.Batch, rows []domain.CartTouch) {
	if len(rows) == 0 {
		return
	}
	days, users := make([]time.Time, len(rows)), make([]string, len(rows))
	for i, r := range rows {
		days[i], users[i] = r.Day, r.UserID
	}
	b.Queue(`INSERT INTO cart_touches (day, user_id)
		SELECT r.day, r.user_id FROM unnest($1::date[], $2::uuid[]) WITH ORDINALITY AS r(day, user_id, i)
		ORDER BY r.i
		ON CONFLICT DO NOTHING`, days, users)
}

func queueDailySales(b *pgx.Batch, rows []domain.Sales) {
	if len(rows) == 0 {
		return
	}
	days, currencies := make([]time.Time, len(rows)), make([]string, len(rows))
	orders, revenue, refunds, refunded := make([]int64, len(rows)), make([]int64, len(rows)), make([]int64, len(rows)), make([]int64, len(rows))
	for i, r := range rows {
		days[i], currencies[i] = r.Day, r.Currency
		orders[i], revenue[i], refunds[i], refunded[i] = r.OrdersConfirmed, r.RevenueMinor, r.Refunds, r.RefundedMinor
	}
	b.Queue(`INSERT INTO daily_sales (day, currency, orders_confirmed, revenue_minor, refunds, refunded_minor)
		SELECT r.day, r.currency, r.orders, r.revenue, r.refunds, r.refunded
		FROM unnest($1::date[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
			WITH ORDINALITY AS r(day, currency, orders, revenue, refunds, refunded, i)
		ORDER BY r.i
		ON CONFLICT (day, currency) DO UPDATE SET
			orders_confirmed = daily_sales.orders_confirmed + EXCLUDED.orders_confirmed,
			revenue_minor = daily_sales.revenue_minor + EXCLUDED.revenue_minor,
			refunds = daily_sales.refunds + EXCLUDED.refunds,
			refunded_minor = daily_sales.refunded_minor + EXCLUDED.refunded_minor`,
		days, currencies, orders, revenue, refunds, refunded)
}

func queueOutcomes(b *pgx.Batch, rows []domain.OutcomeCount) {
	if len(rows) == 0 {
		return
	}
	days, outcomes, reasons, n := make([]time.Time, len(rows)), make([]string, len(rows)), make([]string, len(rows)), make([]int64, len(rows))
	for i, r := range rows {
		days[i], outcomes[i], reasons[i], n[i] = r.Day, string(r.Outcome), r.Reason, r.Orders
	}
	b.Queue(`INSERT INTO order_outcomes (day, outcome, reason, orders)
		SELECT r.day, r.outcome, r.reason, r.orders FROM unnest($1::date[], $2::text[], $3::text[], $4::bigint[])
			WITH ORDINALITY AS r(day, outcome, reason, orders, i)
		ORDER BY r.i
		ON CONFLICT (day, outcome, reason) DO UPDATE SET orders = order_outcomes.orders + EXCLUDED.orders`,
		days, outcomes, reasons, n)
}

// queueNamings writes each product's SKU and name, each only over an older
// version (an empty version says nothing), so the latest description wins in
// whatever order events arrive.
func queueNamings(b *pgx.Batch, rows []domain.Naming) {
	if len(rows) == 0 {
		return
	}
	ids := make([]string, len(rows))
	skus, skuVersions, names, nameVersions := make([]*string, len(rows)), make([]*string, len(rows)), make([]*string, len(rows)), make([]*string, len(rows))
	for i, r := range rows {
		ids[i] = r.ProductID
		if r.SKUVersion != "" {
			skus[i], skuVersions[i] = &r.SKU, &r.SKUVersion
		}
		if r.NameVersion != "" {
			names[i], nameVersions[i] = &r.Name, &r.NameVersion
		}
	}
	b.Queue(`INSERT INTO products AS p (product_id, sku, sku_version, name, name_version)
		SELECT r.id, r.sku, r.sku_version, r.name, r.name_version
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS r(id, sku, sku_version, name, name_version, i)
		ORDER BY r.i
		ON CONFLICT (product_id) DO UPDATE SET
			sku = CASE WHEN `+newerSKU+` THEN EXCLUDED.sku ELSE p.sku END,
			sku_version = CASE WHEN `+newerSKU+` THEN EXCLUDED.sku_version ELSE p.sku_version END,
			name = CASE WHEN `+newerName+` THEN EXCLUDED.name ELSE p.name END,
			name_version = CASE WHEN `+newerName+` THEN EXCLUDED.name_version ELSE p.name_version END`,
		ids, skus, skuVersions, names, nameVersions)
}

// newerSKU and newerName say that the row being inserted names a product's
// SKU (name) at a later version than the stored one.
const (
	newerSKU  = `EXCLUDED.sku_version IS NOT NULL AND (p.sku_version IS NULL OR p.sku_version < EXCLUDED.sku_version)`
	newerName = `EXCLUDED.name_version IS NOT NULL AND (p.name_version IS NULL OR p.name_version < EXCLUDED.name_version)`
)

func queueProductSales(b *pgx.Batch, rows []domain.DailyProductSale) {
	if len(rows) == 0 {
		return
	}
	days, ids, currencies := make([]time.Time, len(rows)), make([]string, len(rows)), make([]string, len(rows))
	units, revenue := make([]int64, len(rows)), make([]int64, len(rows))
	for i, r := range rows {
		days[i], ids[i], currencies[i], units[i], revenue[i] = r.Day, r.ProductID, r.Currency, r.Units, r.RevenueMinor
	}
	b.Queue(`INSERT INTO product_sales (day, product_id, currency, units, revenue_minor)
		SELECT r.day, r.id, r.currency, r.units, r.revenue
		FROM unnest($1::date[], $2::uuid[], $3::text[], $4::bigint[], $5::bigint[]) WITH ORDINALITY AS r(day, id, currency, units, revenue, i)
		ORDER BY r.i
		ON CONFLICT (day, product_id, currency) DO UPDATE SET units = product_sales.units + EXCLUDED.units,
			revenue_minor = product_sales.revenue_minor + EXCLUDED.revenue_minor`,
		days, ids, currencies, units, revenue)
}

func queueStockMoves(b *pgx.Batch, rows []domain.DailyStockMove) {
	if len(rows) == 0 {
		return
	}
	days, ids := make([]time.Time, len(rows)), make([]string, len(rows))
	var counts [7][]int64
	for k := range counts {
		counts[k] = make([]int64, len(rows))
	}
	for i, r := range rows {
		days[i], ids[i] = r.Day, r.ProductID
		for k, kind := range stockColumns {
			counts[k][i] = r.Counts[kind]
		}
	}
	b.Queue(`INSERT INTO stock_movements (day, product_id, reserved, released, committed, returned, adjusted,
			reservation_failures, low_stock_alerts)
		SELECT r.day, r.id, r.reserved, r.released, r.committed, r.returned, r.adjusted, r.failures, r.alerts
		FROM unnest($1::date[], $2::uuid[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
			WITH ORDINALITY AS r(day, id, reserved, released, committed, returned, adjusted, failures, alerts, i)
		ORDER BY r.i
		ON CONFLICT (day, product_id) DO UPDATE SET
			reserved = stock_movements.reserved + EXCLUDED.reserved,
			released = stock_movements.released + EXCLUDED.released,
			committed = stock_movements.committed + EXCLUDED.committed,
			returned = stock_movements.returned + EXCLUDED.returned,
			adjusted = stock_movements.adjusted + EXCLUDED.adjusted,
			reservation_failures = stock_movements.reservation_failures + EXCLUDED.reservation_failures,
			low_stock_alerts = stock_movements.low_stock_alerts + EXCLUDED.low_stock_alerts`,
		days, ids, counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], counts[6])
}

// stockColumns are the stock_movements counters in column order.
var stockColumns = [7]domain.StockKind{domain.StockReserved, domain.StockReleased, domain.StockCommitted,
	domain.StockReturned, domain.StockAdjusted, domain.StockReservationFailed, domain.StockLowAlert}

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
