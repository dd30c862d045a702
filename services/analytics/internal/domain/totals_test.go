package domain

import (
	"reflect"
	"testing"
	"time"
)

// totalsContributions are events of two days: sales and a refund in one
// currency, an outcome twice, a cart touched twice by one user, stock moves
// and descriptions of one product that change its SKU and name over time.
func totalsContributions(t *testing.T) []*Contribution {
	t.Helper()
	day1, day2 := at, at.Add(2*time.Hour) // 2025-03-01 and 2025-03-02 in UTC
	var cs []*Contribution
	add := func(id, typ string, when time.Time, fn func(c *Contribution) error) {
		c, err := NewContribution(id, typ, when)
		if err != nil {
			t.Fatal(err)
		}
		if err := fn(c); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	none := func(*Contribution) error { return nil }
	add("e1", "cart.line_updated.v1", day1, func(c *Contribution) error { return c.TouchCart("u1") })
	add("e2", "cart.line_updated.v1", day1.Add(time.Second), func(c *Contribution) error { return c.TouchCart("u1") })
	add("e3", "order.confirmed.v1", day1, func(c *Contribution) error {
		return c.Sell(Money{2500, "EUR"}, []SoldLine{{ProductID: "p", SKU: "P-1", Name: "Pot", Quantity: 2, UnitPrice: Money{1250, "EUR"}}})
	})
	add("e4", "order.confirmed.v1", day1.Add(time.Minute), func(c *Contribution) error {
		return c.Sell(Money{1300, "EUR"}, []SoldLine{{ProductID: "p", SKU: "P-2", Name: "Pan", Quantity: 1, UnitPrice: Money{1300, "EUR"}}})
	})
	add("e5", "payment.refunded.v1", day1, func(c *Contribution) error { return c.RefundPayment(Money{1300, "EUR"}) })
	add("e6", "order.cancelled.v1", day2, func(c *Contribution) error { return c.End(OutcomeCancelled, "payment_declined") })
	add("e7", "order.cancelled.v1", day2, func(c *Contribution) error { return c.End(OutcomeCancelled, "payment_declined") })
	add("e8", "inventory.stock_reserved.v1", day2, func(c *Contribution) error { return c.MoveStock("p", StockReserved, 3) })
	add("e9", "inventory.stock_adjusted.v1", day2, func(c *Contribution) error { return c.MoveStock("p", StockAdjusted, -5) })
	add("e10", "catalog.product_updated.v1", day2, func(c *Contribution) error { c.Describe("p", "", "Pan (large)"); return nil })
	add("e11", "order.placed.v2", day2, none)
	return cs
}

// Totals add up to what applying the contributions one by one would store,
// whatever order the contributions come in: sums are summed, sets keep one
// entry, and the latest SKU and name each win by their own version.
func TestTotalsSumContributionsInAnyOrder(t *testing.T) {
	cs := totalsContributions(t)
	d1 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	d2 := d1.AddDate(0, 0, 1)
	want := struct {
		events   []EventCount
		carts    []CartTouch
		sales    []Sales
		outcomes []OutcomeCount
		products []DailyProductSale
		stock    []DailyStockMove
		names    []Naming
	}{
		events: []EventCount{
			{d1, "cart.line_updated.v1", 2}, {d1, "order.confirmed.v1", 2}, {d1, "payment.refunded.v1", 1},
			{d2, "catalog.product_updated.v1", 1}, {d2, "inventory.stock_adjusted.v1", 1}, {d2, "inventory.stock_reserved.v1", 1},
			{d2, "order.cancelled.v1", 2}, {d2, "order.placed.v2", 1},
		},
		carts:    []CartTouch{{d1, "u1"}},
		sales:    []Sales{{Day: d1, Currency: "EUR", OrdersConfirmed: 2, RevenueMinor: 3800, Refunds: 1, RefundedMinor: 1300}},
		outcomes: []OutcomeCount{{d2, OutcomeCancelled, "payment_declined", 2}},
		products: []DailyProductSale{{d1, ProductSale{"p", "EUR", 3, 3800}}},
		stock:    []DailyStockMove{{d2, StockMove{ProductID: "p", Counts: [stockKinds]int64{StockReserved: 3, StockAdjusted: -5}}}},
		names:    []Naming{{ProductID: "p", SKU: "P-2", SKUVersion: cs[3].version, Name: "Pan (large)", NameVersion: cs[9].version}},
	}
	for _, order := range [][]int{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}, {3, 9, 0, 2, 5, 1, 10, 4, 8, 6, 7}} {
		tot := NewTotals()
		for _, i := range order {
			tot.Add(cs[i])
		}
		got := []any{tot.EventCounts(), tot.CartTouches(), tot.DailySales(), tot.OutcomeCounts(), tot.ProductSales(), tot.StockMoves(), tot.Namings()}
		exp := []any{want.events, want.carts, want.sales, want.outcomes, want.products, want.stock, want.names}
		for i := range got {
			if !reflect.DeepEqual(got[i], exp[i]) {
				t.Errorf("order %v, aggregate %d:\ngot  %+v\nwant %+v", order, i, got[i], exp[i])
			}
		}
	}
	if empty := NewTotals(); len(empty.EventCounts())+len(empty.CartTouches())+len(empty.Namings()) != 0 {
		t.Errorf("empty totals have rows")
	}
}
