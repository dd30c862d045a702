// Package domain holds the order and the order saga's state machine: which
// reply moves an order from which state to which, and which events each move
// publishes. It is pure: no I/O, no clock, no knowledge of messages, SQL or
// HTTP. It must not import the contracts package; the adapters translate.
package domain

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopmesh/shopmesh/internal/ids"
)

// OrderID identifies an order: a UUID chosen at checkout.
type OrderID string

// ParseOrderID returns id as an OrderID, or ErrInvalidID.
func ParseOrderID(id string) (OrderID, error) {
	canon, err := parseUUID(id)
	if err != nil {
		return "", fmt.Errorf("order id %q: %w", id, ErrInvalidID)
	}
	return OrderID(canon), nil
}

// UserID identifies a customer.
type UserID string

// ParseUserID returns id as a UserID, or ErrInvalidID.
func ParseUserID(id string) (UserID, error) {
	canon, err := parseUUID(id)
	if err != nil {
		return "", fmt.Errorf("user id %q: %w", id, ErrInvalidID)
	}
	return UserID(canon), nil
}

// parseUUID accepts only the canonical 36-character form, lower-cased, so
// that one order has exactly one spelling in URLs, rows and events.
func parseUUID(s string) (string, error) {
	id, ok := ids.Canonical(s)
	if !ok {
		return "", errors.New("not a UUID")
	}
	return id, nil
}

// Money is an amount in integer minor units of an ISO 4217 currency.
type Money struct {
	AmountMinor int64
	Currency    string
}

func (m Money) validate() error {
	if m.AmountMinor < 0 {
		return errors.New("amount is negative")
	}
	if len(m.Currency) != 3 || strings.ContainsFunc(m.Currency, func(r rune) bool { return r < 'A' || r > 'Z' }) {
		return fmt.Errorf("currency %q is not an ISO 4217 code", m.Currency)
	}
	return nil
}

// Line is one order line: a product snapshot taken at checkout.
type Line struct {
	ProductID string
	SKU       string
	Name      string
	Quantity  int
	UnitPrice Money
}

// Total is the line's amount: its unit price times its quantity. A
// placement keeps it far from overflow (maxLineAmount).
func (l Line) Total() Money {
	return Money{AmountMinor: l.UnitPrice.AmountMinor * int64(l.Quantity), Currency: l.UnitPrice.Currency}
}

// Address is where the order ships.
type Address struct {
	Name, Line1, Line2, City, PostalCode, Country string
}

// maxLineAmount keeps quantity times unit price, and their sum, far from
// int64 overflow.
const maxLineAmount = 1 << 53

// Placement is what a checkout hands the order service.
type Placement struct {
	ID              OrderID
	UserID          UserID
	Lines           []Line
	Total           Money
	ShippingAddress Address
	PaymentToken    string
}

func (p Placement) validate() error {
	var errs []error
	// Ids must already be canonical (see ParseOrderID): one spelling each.
	if id, err := ParseOrderID(string(p.ID)); err != nil || id != p.ID {
		errs = append(errs, fmt.Errorf("order id %q is not a canonical UUID", p.ID))
	}
	if id, err := ParseUserID(string(p.UserID)); err != nil || id != p.UserID {
		errs = append(errs, fmt.Errorf("user id %q is not a canonical UUID", p.UserID))
	}
	if len(p.Lines) == 0 {
		errs = append(errs, errors.New("an order needs at least one line"))
	}
	if err := p.Total.validate(); err != nil {
		errs = append(errs, fmt.Errorf("total: %w", err))
	}
	var sum int64
	seen := map[string]bool{}
	for i, l := range p.Lines {
		if _, err := parseUUID(l.ProductID); err != nil {
			errs = append(errs, fmt.Errorf("line %d: product id %q is not a UUID", i, l.ProductID))
		}
		if seen[l.ProductID] {
			errs = append(errs, fmt.Errorf("line %d: product %s appears twice", i, l.ProductID))
		}
		seen[l.ProductID] = true
		if l.SKU == "" || l.Name == "" {
			errs = append(errs, fmt.Errorf("line %d: sku and name are required", i))
		}
		if l.Quantity < 1 {
			errs = append(errs, fmt.Errorf("line %d: quantity %d is below 1", i, l.Quantity))
		}
		if err := l.UnitPrice.validate(); err != nil {
			errs = append(errs, fmt.Errorf("line %d: unit price: %w", i, err))
			continue
		}
		if l.UnitPrice.Currency != p.Total.Currency {
			errs = append(errs, fmt.Errorf("line %d: currency %s differs from the total's %s", i, l.UnitPrice.Currency, p.Total.Currency))
		}
		if l.Quantity > 0 && l.UnitPrice.AmountMinor > maxLineAmount/int64(l.Quantity) {
			errs = append(errs, fmt.Errorf("line %d: amount is absurd", i))
			continue
		}
		sum += int64(l.Quantity) * l.UnitPrice.AmountMinor
		if sum > maxLineAmount {
			errs = append(errs, errors.New("total is absurd"))
			break
		}
	}
	if len(errs) == 0 && sum != p.Total.AmountMinor {
		errs = append(errs, fmt.Errorf("total %d is not the sum of the lines %d", p.Total.AmountMinor, sum))
	}
	a := p.ShippingAddress
	if a.Name == "" || a.Line1 == "" || a.City == "" || a.PostalCode == "" || a.Country == "" {
		errs = append(errs, errors.New("shipping address: name, line1, city, postal code and country are required"))
	}
	if p.PaymentToken == "" {
		errs = append(errs, errors.New("payment token is required"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidOrder, errors.Join(errs...))
	}
	return nil
}

// TimelineEntry is one step of an order's history.
type TimelineEntry struct {
	Type TimelineType
	At   time.Time
}

// Order is an order and its saga state. It is only changed by Saga, so every
// change is a transition the state machine allows.
type Order struct {
	id              OrderID
	userID          UserID
	lines           []Line
	total           Money
	address         Address
	paymentToken    string // cleared once payment was requested
	state           State
	reason          Reason // set in StateCancelled only
	paymentDeadline time.Time
	payment         Payment
	shipmentID      string
	refundRequested bool
	progress        Progress
	timeline        []TimelineEntry
	placedAt        time.Time
	updatedAt       time.Time
	revision        int
}

// Payment is the authorization an order holds, if any.
type Payment struct {
	ID     string
	Amount Money
}

// Progress records which compensations the owning services reported done.
type Progress struct {
	Refunded, StockReleased, StockReturned bool
}

// ID is the order's id.
func (o *Order) ID() OrderID { return o.id }

// UserID is the customer who placed the order.
func (o *Order) UserID() UserID { return o.userID }

// Lines are the order's lines.
func (o *Order) Lines() []Line { return slices.Clone(o.lines) }

// Total is the order's total.
func (o *Order) Total() Money { return o.total }

// ShippingAddress is where the order ships.
func (o *Order) ShippingAddress() Address { return o.address }

// PaymentToken is the provider token from checkout; empty once payment was
// requested.
func (o *Order) PaymentToken() string { return o.paymentToken }

// State is the order's saga state.
func (o *Order) State() State { return o.state }

// Status is the order's public status.
func (o *Order) Status() Status { return o.state.Status() }

// CancellationReason is why the order was cancelled ("" unless cancelled).
func (o *Order) CancellationReason() Reason { return o.reason }

// PaymentDeadline is when the order stops waiting for payment (zero before
// payment was requested).
func (o *Order) PaymentDeadline() time.Time { return o.paymentDeadline }

// Payment is the authorization the order received (zero if none).
func (o *Order) Payment() Payment { return o.payment }

// ShipmentID is the order's shipment ("" until shipping created one).
func (o *Order) ShipmentID() string { return o.shipmentID }

// RefundRequested reports whether the order asked for its payment back.
func (o *Order) RefundRequested() bool { return o.refundRequested }

// Progress is what the compensations have achieved so far.
func (o *Order) Progress() Progress { return o.progress }

// Timeline is the order's history, oldest first.
func (o *Order) Timeline() []TimelineEntry { return slices.Clone(o.timeline) }

// PlacedAt is when the order was placed.
func (o *Order) PlacedAt() time.Time { return o.placedAt }

// UpdatedAt is when the order last changed.
func (o *Order) UpdatedAt() time.Time { return o.updatedAt }

// Revision counts the order's changes; it grows by one with every change.
func (o *Order) Revision() int { return o.revision }

// BelongsTo reports whether user placed the order.
func (o *Order) BelongsTo(user UserID) bool { return o.userID == user }

func (o *Order) record(at time.Time, types ...TimelineType) {
	for _, t := range types {
		o.timeline = append(o.timeline, TimelineEntry{Type: t, At: at})
	}
	if at.After(o.updatedAt) {
		o.updatedAt = at
	}
	o.revision++
}

// Snapshot is every field of an order, for storing and loading it.
type Snapshot struct {
	ID              OrderID
	UserID          UserID
	Lines           []Line
	Total           Money
	ShippingAddress Address
	PaymentToken    string
	State           State
	Reason          Reason
	PaymentDeadline time.Time
	Payment         Payment
	ShipmentID      string
	RefundRequested bool
	Progress        Progress
	Timeline        []TimelineEntry
	PlacedAt        time.Time
	UpdatedAt       time.Time
	Revision        int
}

// Snapshot returns the order's fields.
func (o *Order) Snapshot() Snapshot {
	return Snapshot{
		ID: o.id, UserID: o.userID, Lines: o.Lines(), Total: o.total, ShippingAddress: o.address,
		PaymentToken: o.paymentToken, State: o.state, Reason: o.reason, PaymentDeadline: o.paymentDeadline,
		Payment: o.payment, ShipmentID: o.shipmentID, RefundRequested: o.refundRequested, Progress: o.progress,
		Timeline: o.Timeline(), PlacedAt: o.placedAt, UpdatedAt: o.updatedAt, Revision: o.revision,
	}
}

// FromDatabase rebuilds a stored order, refusing one no transition could
// have produced.
func FromDatabase(s Snapshot) (*Order, error) {
	var errs []error
	if !s.State.valid() {
		errs = append(errs, fmt.Errorf("unknown state %q", s.State))
	}
	if (s.State == StateCancelled) != (s.Reason != "") {
		errs = append(errs, fmt.Errorf("state %s with cancellation reason %q", s.State, s.Reason))
	}
	if s.Reason != "" && !s.Reason.valid() {
		errs = append(errs, fmt.Errorf("unknown cancellation reason %q", s.Reason))
	}
	if len(s.Timeline) == 0 {
		errs = append(errs, errors.New("empty timeline"))
	}
	if s.Revision < 1 {
		errs = append(errs, fmt.Errorf("revision %d: a stored order has changed at least once", s.Revision))
	}
	if s.State == StateAwaitingStock && s.PaymentToken == "" {
		errs = append(errs, errors.New("awaiting stock without a payment token"))
	}
	if (s.State == StateConfirmed || s.State == StateCancellationRequested || s.State == StateShipped || s.State == StateDelivered) && s.Payment.ID == "" {
		errs = append(errs, fmt.Errorf("state %s without a payment", s.State))
	}
	p := Placement{ID: s.ID, UserID: s.UserID, Lines: s.Lines, Total: s.Total, ShippingAddress: s.ShippingAddress, PaymentToken: "-"}
	if err := p.validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("order %s from database: %w", s.ID, errors.Join(errs...))
	}
	return &Order{
		id: s.ID, userID: s.UserID, lines: slices.Clone(s.Lines), total: s.Total, address: s.ShippingAddress,
		paymentToken: s.PaymentToken, state: s.State, reason: s.Reason, paymentDeadline: s.PaymentDeadline,
		payment: s.Payment, shipmentID: s.ShipmentID, refundRequested: s.RefundRequested, progress: s.Progress,
		timeline: slices.Clone(s.Timeline), placedAt: s.PlacedAt, updatedAt: s.UpdatedAt, revision: s.Revision,
	}, nil
}
