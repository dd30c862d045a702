package domain

import (
	"cmp"
	"maps"
	"slices"
	"time"
)

// Totals is the sum of several events' contributions, one entry per
// aggregate row they touch: what a store writes for a batch of events
// instead of one write per event and row. Every aggregate is a sum, a set
// or a latest-wins description, so adding contributions first and writing
// the totals once changes nothing in the result.
type Totals struct {
	events   map[eventKey]int64
	carts    map[cartKey]struct{}
	sales    map[salesKey]Sales
	outcomes map[outcomeKey]int64
	products map[productKey]ProductSale
	stock    map[stockKey]StockMove
	names    map[string]Naming
}

type (
	eventKey struct {
		day       time.Time
		eventType string
	}
	cartKey struct {
		day    time.Time
		userID string
	}
	salesKey struct {
		day      time.Time
		currency string
	}
	outcomeKey struct {
		day     time.Time
		outcome Outcome
		reason  string
	}
	productKey struct {
		day                 time.Time
		productID, currency string
	}
	stockKey struct {
		day       time.Time
		productID string
	}
)

// EventCount is how many events of a type occurred on a day.
type EventCount struct {
	Day       time.Time
	EventType string
	Events    int64
}

// CartTouch is a user whose cart changed on a day.
type CartTouch struct {
	Day    time.Time
	UserID string
}

// OutcomeCount is how many orders ended one way on a day.
type OutcomeCount struct {
	Day     time.Time
	Outcome Outcome
	Reason  string
	Orders  int64
}

// DailyProductSale is a product's sales on a day.
type DailyProductSale struct {
	Day time.Time
	ProductSale
}

// DailyStockMove is a product's stock movements on a day.
type DailyStockMove struct {
	Day time.Time
	StockMove
}

// Naming is the latest SKU and the latest name events gave a product, each
// with its own version ("" when no event said it).
type Naming struct {
	ProductID         string
	SKU, SKUVersion   string
	Name, NameVersion string
}

// NewTotals returns empty totals.
func NewTotals() *Totals {
	return &Totals{
		events: map[eventKey]int64{}, carts: map[cartKey]struct{}{}, sales: map[salesKey]Sales{},
		outcomes: map[outcomeKey]int64{}, products: map[productKey]ProductSale{}, stock: map[stockKey]StockMove{},
		names: map[string]Naming{},
	}
}

// Add adds one event's contribution.
func (t *Totals) Add(c *Contribution) {
	t.events[eventKey{c.Day, c.EventType}]++
	if c.CartTouchedBy != "" {
		t.carts[cartKey{c.Day, c.CartTouchedBy}] = struct{}{}
	}
	if c.Sale != nil {
		k := salesKey{c.Day, c.Sale.Currency}
		s := t.sales[k]
		s.OrdersConfirmed++
		s.RevenueMinor += c.Sale.AmountMinor
		t.sales[k] = s
	}
	if c.Refund != nil {
		k := salesKey{c.Day, c.Refund.Currency}
		s := t.sales[k]
		s.Refunds++
		s.RefundedMinor += c.Refund.AmountMinor
		t.sales[k] = s
	}
	if c.Outcome != "" {
		t.outcomes[outcomeKey{c.Day, c.Outcome, c.Reason}]++
	}
	for _, p := range c.Products {
		k := productKey{c.Day, p.ProductID, p.Currency}
		s := t.products[k]
		s.ProductID, s.Currency = p.ProductID, p.Currency
		s.Units += p.Units
		s.RevenueMinor += p.RevenueMinor
		t.products[k] = s
	}
	for _, m := range c.Stock {
		k := stockKey{c.Day, m.ProductID}
		s := t.stock[k]
		s.ProductID = m.ProductID
		for i, n := range m.Counts {
			s.Counts[i] += n
		}
		t.stock[k] = s
	}
	for _, d := range c.Descriptions {
		n := t.names[d.ProductID]
		n.ProductID = d.ProductID
		if d.SKU != "" && d.Version > n.SKUVersion {
			n.SKU, n.SKUVersion = d.SKU, d.Version
		}
		if d.Name != "" && d.Version > n.NameVersion {
			n.Name, n.NameVersion = d.Name, d.Version
		}
		t.names[d.ProductID] = n
	}
}

// The accessors below return each aggregate's rows sorted by key, so that
// stores lock rows in one global order.

// rows turns one aggregate's map into its rows, sorted by compare.
func rows[K comparable, V, R any](m map[K]V, row func(K, V) R, compare func(a, b R) int) []R {
	out := make([]R, 0, len(m))
	for k, v := range m {
		out = append(out, row(k, v))
	}
	slices.SortFunc(out, compare)
	return out
}

// EventCounts returns the per-day, per-type event counts.
func (t *Totals) EventCounts() []EventCount {
	return rows(t.events, func(k eventKey, n int64) EventCount { return EventCount{Day: k.day, EventType: k.eventType, Events: n} },
		func(a, b EventCount) int { return cmp.Or(a.Day.Compare(b.Day), cmp.Compare(a.EventType, b.EventType)) })
}

// CartTouches returns the users whose cart changed, per day.
func (t *Totals) CartTouches() []CartTouch {
	return rows(t.carts, func(k cartKey, _ struct{}) CartTouch { return CartTouch{Day: k.day, UserID: k.userID} },
		func(a, b CartTouch) int { return cmp.Or(a.Day.Compare(b.Day), cmp.Compare(a.UserID, b.UserID)) })
}

// DailySales returns confirmed orders and refunds per day and currency.
func (t *Totals) DailySales() []Sales {
	return rows(t.sales, func(k salesKey, s Sales) Sales { s.Day, s.Currency = k.day, k.currency; return s },
		func(a, b Sales) int { return cmp.Or(a.Day.Compare(b.Day), cmp.Compare(a.Currency, b.Currency)) })
}

// OutcomeCounts returns how orders ended per day.
func (t *Totals) OutcomeCounts() []OutcomeCount {
	return rows(t.outcomes,
		func(k outcomeKey, n int64) OutcomeCount {
			return OutcomeCount{Day: k.day, Outcome: k.outcome, Reason: k.reason, Orders: n}
		},
		func(a, b OutcomeCount) int {
			return cmp.Or(a.Day.Compare(b.Day), cmp.Compare(a.Outcome, b.Outcome), cmp.Compare(a.Reason, b.Reason))
		})
}

// ProductSales returns confirmed sales per day, product and currency.
func (t *Totals) ProductSales() []DailyProductSale {
	return rows(t.products, func(k productKey, s ProductSale) DailyProductSale {
		return DailyProductSale{Day: k.day, ProductSale: s}
	},
		func(a, b DailyProductSale) int {
			return cmp.Or(a.Day.Compare(b.Day), cmp.Compare(a.ProductID, b.ProductID), cmp.Compare(a.Currency, b.Currency))
		})
}

// StockMoves returns stock movements per day and product.
func (t *Totals) StockMoves() []DailyStockMove {
	return rows(t.stock, func(k stockKey, m StockMove) DailyStockMove { return DailyStockMove{Day: k.day, StockMove: m} },
		func(a, b DailyStockMove) int {
			return cmp.Or(a.Day.Compare(b.Day), cmp.Compare(a.ProductID, b.ProductID))
		})
}

// Namings returns the latest SKU and name per product.
func (t *Totals) Namings() []Naming {
	return slices.SortedFunc(maps.Values(t.names), func(a, b Naming) int { return cmp.Compare(a.ProductID, b.ProductID) })
}
