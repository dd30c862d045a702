// Package domain holds the analytics service's rules: what one event adds to
// the sales, outcome, funnel, stock and product aggregates (a Contribution),
// the reporting period, and how reports are derived from the aggregates.
// Every aggregate is a sum or a set keyed by the event's UTC day, so
// applying the same events in any order gives the same aggregates, which is
// what makes the read model rebuildable by replay. It is pure: no I/O, no
// clock, no knowledge of event wire formats or HTTP.
package domain

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// ErrInvalid wraps input that breaks the rules (a bad amount, period, ...).
var ErrInvalid = errors.New("invalid analytics input")

// MaxPeriod bounds a report's period.
const MaxPeriod = 366 * 24 * time.Hour

// Money is an amount in integer minor units of an ISO 4217 currency.
type Money struct {
	AmountMinor int64
	Currency    string
}

func (m Money) validate() error {
	if m.AmountMinor < 0 {
		return fmt.Errorf("%w: amount %d is negative", ErrInvalid, m.AmountMinor)
	}
	if len(m.Currency) != 3 {
		return fmt.Errorf("%w: currency %q", ErrInvalid, m.Currency)
	}
	return nil
}

// Day returns the UTC calendar day of t, as midnight UTC.
func Day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Outcome is how an order ended.
type Outcome string

// Order outcomes.
const (
	OutcomeCompleted Outcome = "completed"
	OutcomeCancelled Outcome = "cancelled"
)

// StockKind is a kind of stock movement.
type StockKind int

// Stock movements counted per product and day.
const (
	StockReserved StockKind = iota
	StockReleased
	StockCommitted
	StockReturned
	// StockAdjusted sums signed adjustments (restocks, corrections).
	StockAdjusted
	// StockReservationFailed counts products short in a failed reservation.
	StockReservationFailed
	// StockLowAlert counts low-stock alerts.
	StockLowAlert
	stockKinds
)

// StockMove is one product's stock movements on a day, indexed by StockKind.
type StockMove struct {
	ProductID string
	Counts    [stockKinds]int64
}

// ProductSale is the confirmed sales of one product in one currency.
type ProductSale struct {
	ProductID    string
	Currency     string
	Units        int64
	RevenueMinor int64
}

// Description is what an event says a product is called. Version orders
// descriptions: the latest by (occurred_at, event id) wins, whatever order
// they are applied in.
type Description struct {
	ProductID string
	SKU       string
	Name      string
	Version   string
}

// SoldLine is one line of a confirmed order.
type SoldLine struct {
	ProductID string
	SKU       string
	Name      string
	Quantity  int
	UnitPrice Money
}

// Contribution is everything one event adds to the aggregates. Build it
// with NewContribution and its methods; the store applies it in the inbox
// transaction of the event.
type Contribution struct {
	EventType string
	Day       time.Time
	// CartTouchedBy is the user whose cart changed, if the event is a cart
	// change.
	CartTouchedBy string
	// Sale is the total of a confirmed order.
	Sale *Money
	// Refund is a refunded amount.
	Refund *Money
	// Outcome is set for an order that ended; Reason for a cancellation.
	Outcome Outcome
	Reason  string
	// Products, Descriptions and Stock are sorted by product (and currency),
	// one entry per key, so that stores lock rows in one global order.
	Products     []ProductSale
	Descriptions []Description
	Stock        []StockMove

	version string
}

// NewContribution starts the contribution of one event.
func NewContribution(eventID, eventType string, occurredAt time.Time) (*Contribution, error) {
	switch {
	case eventID == "" || eventType == "":
		return nil, fmt.Errorf("%w: event id and type are required", ErrInvalid)
	case occurredAt.IsZero():
		return nil, fmt.Errorf("%w: event %s has no occurrence time", ErrInvalid, eventID)
	}
	return &Contribution{EventType: eventType, Day: Day(occurredAt),
		version: occurredAt.UTC().Format("2006-01-02T15:04:05.000000000Z") + "/" + eventID}, nil
}

// TouchCart counts a cart change of a user (distinct users per period are
// the funnel's carts touched).
func (c *Contribution) TouchCart(userID string) error {
	if userID == "" {
		return fmt.Errorf("%w: cart change without a user", ErrInvalid)
	}
	c.CartTouchedBy = userID
	return nil
}

// Sell counts a confirmed order: its total as revenue and its lines as
// product sales, merged per product and currency.
func (c *Contribution) Sell(total Money, lines []SoldLine) error {
	if err := total.validate(); err != nil {
		return err
	}
	merged := map[[2]string]ProductSale{}
	for _, l := range lines {
		if err := l.UnitPrice.validate(); err != nil {
			return err
		}
		if l.ProductID == "" || l.Quantity < 1 {
			return fmt.Errorf("%w: line %+v", ErrInvalid, l)
		}
		k := [2]string{l.ProductID, l.UnitPrice.Currency}
		s := merged[k]
		s.ProductID, s.Currency = l.ProductID, l.UnitPrice.Currency
		s.Units += int64(l.Quantity)
		s.RevenueMinor += int64(l.Quantity) * l.UnitPrice.AmountMinor
		merged[k] = s
		c.Describe(l.ProductID, l.SKU, l.Name)
	}
	c.Sale = &total
	c.Products = slices.SortedFunc(maps.Values(merged), func(a, b ProductSale) int {
		return cmp.Or(cmp.Compare(a.ProductID, b.ProductID), cmp.Compare(a.Currency, b.Currency))
	})
	return nil
}

// RefundPayment counts a refund.
func (c *Contribution) RefundPayment(amount Money) error {
	if err := amount.validate(); err != nil {
		return err
	}
	c.Refund = &amount
	return nil
}

// End counts an order's outcome; reason is the cancellation reason.
func (c *Contribution) End(o Outcome, reason string) error {
	switch {
	case o == OutcomeCompleted && reason == "":
	case o == OutcomeCancelled && reason != "":
	default:
		return fmt.Errorf("%w: outcome %q with reason %q", ErrInvalid, o, reason)
	}
	c.Outcome, c.Reason = o, reason
	return nil
}

// Describe records what the event calls a product; empty fields say
// nothing.
func (c *Contribution) Describe(productID, sku, name string) {
	if productID == "" || sku == "" && name == "" {
		return
	}
	i, found := slices.BinarySearchFunc(c.Descriptions, productID, func(d Description, id string) int { return cmp.Compare(d.ProductID, id) })
	if !found {
		c.Descriptions = slices.Insert(c.Descriptions, i, Description{ProductID: productID, Version: c.version})
	}
	d := &c.Descriptions[i]
	if sku != "" {
		d.SKU = sku
	}
	if name != "" {
		d.Name = name
	}
}

// MoveStock counts a stock movement of a product: a quantity for
// reservations, releases, commits, returns and adjustments (signed), one
// for a reservation failure or a low-stock alert.
func (c *Contribution) MoveStock(productID string, kind StockKind, quantity int) error {
	if productID == "" || kind < 0 || kind >= stockKinds {
		return fmt.Errorf("%w: stock movement %d of %q", ErrInvalid, kind, productID)
	}
	if quantity < 0 && kind != StockAdjusted {
		return fmt.Errorf("%w: negative quantity %d", ErrInvalid, quantity)
	}
	i, found := slices.BinarySearchFunc(c.Stock, productID, func(m StockMove, id string) int { return cmp.Compare(m.ProductID, id) })
	if !found {
		c.Stock = slices.Insert(c.Stock, i, StockMove{ProductID: productID})
	}
	c.Stock[i].Counts[kind] += int64(quantity)
	return nil
}

// Period is a report's span of UTC days, both ends included.
type Period struct {
	From, To time.Time
}

// NewPeriod returns the period from..to; a missing end defaults to today
// and a missing start to 29 days before the end (30 days in all). It must
// not be reversed or longer than MaxPeriod.
func NewPeriod(from, to *time.Time, today time.Time) (Period, error) {
	p := Period{To: Day(today)}
	if to != nil {
		p.To = Day(*to)
	}
	p.From = p.To.AddDate(0, 0, -29)
	if from != nil {
		p.From = Day(*from)
	}
	switch {
	case p.From.After(p.To):
		return Period{}, fmt.Errorf("%w: from %s is after to %s", ErrInvalid, p.From.Format(time.DateOnly), p.To.Format(time.DateOnly))
	case p.To.Sub(p.From) >= MaxPeriod:
		return Period{}, fmt.Errorf("%w: the period exceeds %d days", ErrInvalid, int(MaxPeriod.Hours()/24))
	}
	return p, nil
}

// Sales are the sales of one currency on one day (Day zero for a total).
type Sales struct {
	Day             time.Time
	Currency        string
	OrdersConfirmed int64
	RevenueMinor    int64
	Refunds         int64
	RefundedMinor   int64
}

// NetMinor is revenue less refunds.
func (s Sales) NetMinor() int64 { return s.RevenueMinor - s.RefundedMinor }

// Outcomes counts orders by how they ended.
type Outcomes struct {
	Completed int64
	Cancelled int64
	// ByReason counts cancellations per reason.
	ByReason map[string]int64
}

// ProductRank is one product's confirmed sales in one currency over a
// period.
type ProductRank struct {
	ProductID, SKU, Name string
	Currency             string
	Units, RevenueMinor  int64
}

// StockSummary is one product's stock movements over a period.
type StockSummary struct {
	ProductID, SKU string
	Counts         [stockKinds]int64
}

// SalesReport is what sold, what it earned and how orders ended in a
// period.
type SalesReport struct {
	Period   Period
	Totals   []Sales
	Days     []Sales
	Outcomes Outcomes
	Top      []ProductRank
	Stock    []StockSummary
}

// NewSalesReport assembles a report from per-day sales (in any order): it
// sorts the days and totals them per currency.
func NewSalesReport(p Period, days []Sales, outcomes Outcomes, top []ProductRank, stock []StockSummary) SalesReport {
	days = slices.Clone(days)
	slices.SortFunc(days, func(a, b Sales) int {
		return cmp.Or(a.Day.Compare(b.Day), cmp.Compare(a.Currency, b.Currency))
	})
	totals := map[string]Sales{}
	for _, d := range days {
		t := totals[d.Currency]
		t.Currency = d.Currency
		t.OrdersConfirmed += d.OrdersConfirmed
		t.RevenueMinor += d.RevenueMinor
		t.Refunds += d.Refunds
		t.RefundedMinor += d.RefundedMinor
		totals[d.Currency] = t
	}
	if outcomes.ByReason == nil {
		outcomes.ByReason = map[string]int64{}
	}
	return SalesReport{
		Period:   p,
		Days:     days,
		Totals:   slices.SortedFunc(maps.Values(totals), func(a, b Sales) int { return cmp.Compare(a.Currency, b.Currency) }),
		Outcomes: outcomes,
		Top:      top,
		Stock:    stock,
	}
}

// Funnel counts how far shoppers got in a period.
type Funnel struct {
	Period       Period
	CartsTouched int64
	Checkouts    int64
	Placed       int64
	Confirmed    int64
	Delivered    int64
}
