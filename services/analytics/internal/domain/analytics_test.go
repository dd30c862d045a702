package domain

import (
	"errors"
	"testing"
	"time"
)

var at = time.Date(2025, 3, 1, 23, 59, 59, 0, time.FixedZone("CET", 3600))

func TestNewContributionIsKeyedByUTCDay(t *testing.T) {
	c, err := NewContribution("e1", "order.placed.v1", at)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC); !c.Day.Equal(want) || c.Day.Location() != time.UTC {
		t.Errorf("day = %s, want %s", c.Day, want)
	}
	for _, bad := range []struct {
		id, typ string
		at      time.Time
	}{{"", "t", at}, {"e", "", at}, {"e", "t", time.Time{}}} {
		if _, err := NewContribution(bad.id, bad.typ, bad.at); !errors.Is(err, ErrInvalid) {
			t.Errorf("NewContribution(%q, %q, %s) = %v", bad.id, bad.typ, bad.at, err)
		}
	}
}

func TestSellMergesLinesPerProductAndCurrency(t *testing.T) {
	c, _ := NewContribution("e1", "order.confirmed.v1", at)
	lines := []SoldLine{
		{ProductID: "b", SKU: "B-1", Name: "Bowl", Quantity: 1, UnitPrice: Money{700, "EUR"}},
		{ProductID: "a", SKU: "A-1", Name: "Cup", Quantity: 2, UnitPrice: Money{1250, "EUR"}},
		{ProductID: "a", SKU: "A-1", Name: "Cup", Quantity: 1, UnitPrice: Money{1250, "EUR"}},
	}
	if err := c.Sell(Money{4450, "EUR"}, lines); err != nil {
		t.Fatal(err)
	}
	want := []ProductSale{{"a", "EUR", 3, 3750}, {"b", "EUR", 1, 700}}
	if len(c.Products) != 2 || c.Products[0] != want[0] || c.Products[1] != want[1] {
		t.Errorf("products = %+v, want %+v", c.Products, want)
	}
	if *c.Sale != (Money{4450, "EUR"}) {
		t.Errorf("sale = %+v", c.Sale)
	}
	if len(c.Descriptions) != 2 || c.Descriptions[0].ProductID != "a" || c.Descriptions[0].Name != "Cup" || c.Descriptions[1].SKU != "B-1" {
		t.Errorf("descriptions = %+v", c.Descriptions)
	}
	for _, bad := range [][]SoldLine{
		{{ProductID: "a", Quantity: 0, UnitPrice: Money{1, "EUR"}}},
		{{ProductID: "", Quantity: 1, UnitPrice: Money{1, "EUR"}}},
		{{ProductID: "a", Quantity: 1, UnitPrice: Money{-1, "EUR"}}},
	} {
		c, _ := NewContribution("e2", "order.confirmed.v1", at)
		if err := c.Sell(Money{1, "EUR"}, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Sell(%+v) = %v", bad, err)
		}
	}
}

func TestStockMovesAndDescriptions(t *testing.T) {
	c, _ := NewContribution("e1", "inventory.stock_adjusted.v1", at)
	for _, m := range []struct {
		id   string
		kind StockKind
		n    int
	}{{"b", StockReserved, 2}, {"a", StockReserved, 1}, {"b", StockReserved, 3}, {"a", StockAdjusted, -4}} {
		if err := c.MoveStock(m.id, m.kind, m.n); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.Stock) != 2 || c.Stock[0].ProductID != "a" || c.Stock[0].Counts[StockAdjusted] != -4 || c.Stock[1].Counts[StockReserved] != 5 {
		t.Errorf("stock = %+v", c.Stock)
	}
	if err := c.MoveStock("a", StockReserved, -1); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative reservation: %v", err)
	}
	if err := c.MoveStock("a", stockKinds, 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown kind: %v", err)
	}
	c.Describe("z", "Z-1", "")
	c.Describe("z", "", "Zed")
	c.Describe("y", "", "")
	if len(c.Descriptions) != 1 || c.Descriptions[0] != (Description{ProductID: "z", SKU: "Z-1", Name: "Zed", Version: c.version}) {
		t.Errorf("descriptions = %+v", c.Descriptions)
	}
	later, _ := NewContribution("e0", "x", at.Add(time.Microsecond))
	if !(later.version > c.version) {
		t.Errorf("version %q does not sort after %q", later.version, c.version)
	}
}

func TestEndAndRefund(t *testing.T) {
	c, _ := NewContribution("e1", "order.cancelled.v1", at)
	if err := c.End(OutcomeCancelled, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("cancellation without reason: %v", err)
	}
	if err := c.End(OutcomeCompleted, "why"); !errors.Is(err, ErrInvalid) {
		t.Errorf("completion with reason: %v", err)
	}
	if err := c.End(OutcomeCancelled, "out_of_stock"); err != nil || c.Outcome != OutcomeCancelled || c.Reason != "out_of_stock" {
		t.Errorf("End = %v, %+v", err, c)
	}
	if err := c.RefundPayment(Money{-5, "EUR"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative refund: %v", err)
	}
	if err := c.TouchCart(""); !errors.Is(err, ErrInvalid) {
		t.Errorf("cart touch without user: %v", err)
	}
}

func TestNewPeriod(t *testing.T) {
	today := time.Date(2025, 3, 31, 15, 0, 0, 0, time.UTC)
	d := func(s string) *time.Time {
		v, _ := time.Parse(time.DateOnly, s)
		return &v
	}
	cases := []struct {
		from, to         *time.Time
		wantFrom, wantTo string
		wantErr          bool
	}{
		{nil, nil, "2025-03-02", "2025-03-31", false},
		{d("2025-01-01"), nil, "2025-01-01", "2025-03-31", false},
		{nil, d("2025-02-10"), "2025-01-12", "2025-02-10", false},
		{d("2025-02-10"), d("2025-02-10"), "2025-02-10", "2025-02-10", false},
		{d("2024-01-01"), d("2024-12-31"), "2024-01-01", "2024-12-31", false},
		{d("2025-02-11"), d("2025-02-10"), "", "", true},
		{d("2023-01-01"), d("2024-12-31"), "", "", true},
	}
	for _, c := range cases {
		p, err := NewPeriod(c.from, c.to, today)
		if c.wantErr {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("NewPeriod(%v, %v) = %+v, %v; want ErrInvalid", c.from, c.to, p, err)
			}
			continue
		}
		if err != nil || p.From.Format(time.DateOnly) != c.wantFrom || p.To.Format(time.DateOnly) != c.wantTo {
			t.Errorf("NewPeriod(%v, %v) = %+v, %v; want %s..%s", c.from, c.to, p, err, c.wantFrom, c.wantTo)
		}
	}
}

func TestSalesReportTotalsPerCurrency(t *testing.T) {
	d1, d2 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)
	r := NewSalesReport(Period{d1, d2}, []Sales{
		{Day: d2, Currency: "EUR", OrdersConfirmed: 1, RevenueMinor: 1000, Refunds: 1, RefundedMinor: 400},
		{Day: d1, Currency: "USD", OrdersConfirmed: 1, RevenueMinor: 900},
		{Day: d1, Currency: "EUR", OrdersConfirmed: 2, RevenueMinor: 3000},
	}, Outcomes{}, nil, nil)
	if len(r.Days) != 3 || !r.Days[0].Day.Equal(d1) || r.Days[0].Currency != "EUR" || !r.Days[2].Day.Equal(d2) {
		t.Errorf("days = %+v", r.Days)
	}
	want := []Sales{{Currency: "EUR", OrdersConfirmed: 3, RevenueMinor: 4000, Refunds: 1, RefundedMinor: 400},
		{Currency: "USD", OrdersConfirmed: 1, RevenueMinor: 900}}
	if len(r.Totals) != 2 || r.Totals[0] != want[0] || r.Totals[1] != want[1] {
		t.Errorf("totals = %+v, want %+v", r.Totals, want)
	}
	if r.Totals[0].NetMinor() != 3600 || r.Outcomes.ByReason == nil {
		t.Errorf("net = %d, by reason %v", r.Totals[0].NetMinor(), r.Outcomes.ByReason)
	}
}
