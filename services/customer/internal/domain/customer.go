// Package domain holds the customer service's read-model rules: a
// customer's profile as the user events describe it, and each order's
// history entry as the order lifecycle events describe it. Events may
// arrive late, twice or out of order (dead-letter and history replays), so
// every rule here is order-tolerant: a lifecycle step is recorded once, a
// status only moves forward and never leaves a terminal status, and the
// newest address wins by occurrence time. It is pure: no I/O, no clock.
package domain

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Errors of the read-model rules.
var (
	// ErrNotFound is returned by stores for an unknown profile or order.
	ErrNotFound = errors.New("not found")
	// ErrOwnerMismatch is returned for an order event naming another
	// customer than the order's earlier events.
	ErrOwnerMismatch = errors.New("order belongs to another customer")
	// ErrInvalid wraps input that breaks the rules.
	ErrInvalid = errors.New("invalid customer input")
)

// Money is an amount in integer minor units of an ISO 4217 currency.
type Money struct {
	AmountMinor int64
	Currency    string
}

// Address is a postal address.
type Address struct {
	Name, Line1, Line2, City, PostalCode, Country string
}

// Profile is what the shop knows about a customer from the user events.
type Profile struct {
	userID        string
	email, name   string
	registeredAt  time.Time
	address       *Address
	addressAt     time.Time
	deactivatedAt time.Time
}

// NewProfile returns the empty profile of a user, before any event.
func NewProfile(userID string) (*Profile, error) {
	if userID == "" {
		return nil, fmt.Errorf("%w: user id is required", ErrInvalid)
	}
	return &Profile{userID: userID}, nil
}

// StoredProfile is a profile as the store holds it.
type StoredProfile struct {
	UserID        string
	Email, Name   string
	RegisteredAt  time.Time
	Address       *Address
	AddressAt     time.Time
	DeactivatedAt time.Time
}

// ProfileFromDatabase rebuilds a stored profile.
func ProfileFromDatabase(s StoredProfile) (*Profile, error) {
	if s.UserID == "" {
		return nil, errors.New("stored profile: user id is empty")
	}
	return &Profile{userID: s.UserID, email: s.Email, name: s.Name, registeredAt: s.RegisteredAt,
		address: s.Address, addressAt: s.AddressAt, deactivatedAt: s.DeactivatedAt}, nil
}

// Register records the registration's email and name.
func (p *Profile) Register(email, name string, at time.Time) {
	p.email, p.name, p.registeredAt = email, name, at
}

// ChangeAddress records an address change unless a newer one is already
// recorded; it reports whether it applied.
func (p *Profile) ChangeAddress(a Address, at time.Time) bool {
	if p.address != nil && at.Before(p.addressAt) {
		return false
	}
	p.address, p.addressAt = &a, at
	return true
}

// Deactivate records the deactivation (the first one seen counts).
func (p *Profile) Deactivate(at time.Time) {
	if p.deactivatedAt.IsZero() {
		p.deactivatedAt = at
	}
}

// UserID is the customer.
func (p *Profile) UserID() string { return p.userID }

// Email is the registered email ("" before the registration is seen).
func (p *Profile) Email() string { return p.email }

// Name is the registered name.
func (p *Profile) Name() string { return p.name }

// Registered reports whether the registration has been seen: only then is
// the profile shown.
func (p *Profile) Registered() bool { return !p.registeredAt.IsZero() }

// RegisteredAt is when the user registered.
func (p *Profile) RegisteredAt() time.Time { return p.registeredAt }

// Address is the default shipping address, if any.
func (p *Profile) Address() (Address, bool) {
	if p.address == nil {
		return Address{}, false
	}
	return *p.address, true
}

// AddressAt is when the address last changed.
func (p *Profile) AddressAt() time.Time { return p.addressAt }

// Deactivated reports whether the account was deactivated.
func (p *Profile) Deactivated() bool { return !p.deactivatedAt.IsZero() }

// DeactivatedAt is when the account was deactivated (zero if it was not).
func (p *Profile) DeactivatedAt() time.Time { return p.deactivatedAt }

// Status is an order's public status.
type Status string

// Public order statuses, as the order API shows them. delivered and
// cancelled are terminal.
const (
	StatusPending   Status = "pending"
	StatusConfirmed Status = "confirmed"
	StatusShipped   Status = "shipped"
	StatusDelivered Status = "delivered"
	StatusCancelled Status = "cancelled"
)

// rank orders statuses along the lifecycle; a status moves only to a higher
// rank, and terminal statuses share the highest.
func (s Status) rank() int {
	switch s {
	case StatusPending:
		return 1
	case StatusConfirmed:
		return 2
	case StatusShipped:
		return 3
	case StatusDelivered, StatusCancelled:
		return 4
	}
	return 0
}

// Terminal reports whether nothing moves the status any more.
func (s Status) Terminal() bool { return s == StatusDelivered || s == StatusCancelled }

// Step is an order lifecycle event as the history records it.
type Step string

// Lifecycle steps, one per order event the service reads.
const (
	StepPlaced    Step = "placed"
	StepConfirmed Step = "confirmed"
	StepCancelled Step = "cancelled"
	StepShipped   Step = "shipped"
	StepDelivered Step = "delivered"
	StepCompleted Step = "completed"
)

// status is the public status a step leads to.
func (s Step) status() (Status, bool) {
	switch s {
	case StepPlaced:
		return StatusPending, true
	case StepConfirmed:
		return StatusConfirmed, true
	case StepShipped:
		return StatusShipped, true
	case StepDelivered, StepCompleted:
		return StatusDelivered, true
	case StepCancelled:
		return StatusCancelled, true
	}
	return "", false
}

// Change is one lifecycle event of an order.
type Change struct {
	Step Step
	At   time.Time
	// Total is set by the events that carry it.
	Total *Money
	// Reason is the cancellation reason of StepCancelled.
	Reason string
}

// TimelineEntry is one step of an order's history.
type TimelineEntry struct {
	Step Step
	At   time.Time
}

// Order is one order in a customer's history.
type Order struct {
	id, userID string
	status     Status
	total      *Money
	reason     string
	placedAt   time.Time
	updatedAt  time.Time
	timeline   []TimelineEntry
	added      []TimelineEntry
}

// NewOrder returns the history entry of an order before any change.
func NewOrder(id, userID string) (*Order, error) {
	if id == "" || userID == "" {
		return nil, fmt.Errorf("%w: order and user ids are required", ErrInvalid)
	}
	return &Order{id: id, userID: userID}, nil
}

// StoredOrder is a history entry as the store holds it.
type StoredOrder struct {
	ID, UserID         string
	Status             Status
	Total              *Money
	CancellationReason string
	PlacedAt           time.Time
	UpdatedAt          time.Time
	Timeline           []TimelineEntry
}

// OrderFromDatabase rebuilds a stored history entry.
func OrderFromDatabase(s StoredOrder) (*Order, error) {
	if s.ID == "" || s.UserID == "" {
		return nil, errors.New("stored order: ids are empty")
	}
	if s.Status.rank() == 0 {
		return nil, fmt.Errorf("stored order %s: unknown status %q", s.ID, s.Status)
	}
	tl := slices.Clone(s.Timeline)
	sortTimeline(tl)
	return &Order{id: s.ID, userID: s.UserID, status: s.Status, total: s.Total, reason: s.CancellationReason,
		placedAt: s.PlacedAt, updatedAt: s.UpdatedAt, timeline: tl}, nil
}

// Apply records a lifecycle event of the order and reports whether it
// changed anything. Each step is recorded once (an event announced again is
// ignored); the status moves only forward and never leaves a terminal
// status, whatever order events arrive in; the placement time is the placed
// event's, or the earliest event's until that arrives.
func (o *Order) Apply(userID string, c Change) (bool, error) {
	target, ok := c.Step.status()
	switch {
	case !ok:
		return false, fmt.Errorf("%w: unknown step %q", ErrInvalid, c.Step)
	case c.At.IsZero():
		return false, fmt.Errorf("%w: step %s has no time", ErrInvalid, c.Step)
	case userID != o.userID:
		return false, fmt.Errorf("order %s: %w", o.id, ErrOwnerMismatch)
	case c.Total != nil && (c.Total.AmountMinor < 0 || len(c.Total.Currency) != 3):
		return false, fmt.Errorf("%w: total %+v", ErrInvalid, *c.Total)
	}
	if slices.ContainsFunc(o.timeline, func(e TimelineEntry) bool { return e.Step == c.Step }) {
		return false, nil
	}
	entry := TimelineEntry{Step: c.Step, At: c.At}
	o.timeline = append(o.timeline, entry)
	sortTimeline(o.timeline)
	o.added = append(o.added, entry)

	if o.total == nil && c.Total != nil {
		t := *c.Total
		o.total = &t
	}
	switch {
	case c.Step == StepPlaced:
		o.placedAt = c.At
	case o.placedAt.IsZero() || (c.At.Before(o.placedAt) && !o.has(StepPlaced)):
		o.placedAt = c.At
	}
	if c.At.After(o.updatedAt) {
		o.updatedAt = c.At
	}
	if !o.status.Terminal() && target.rank() > o.status.rank() {
		o.status = target
		if target == StatusCancelled {
			o.reason = c.Reason
		}
	}
	return true, nil
}

func (o *Order) has(s Step) bool {
	return slices.ContainsFunc(o.timeline, func(e TimelineEntry) bool { return e.Step == s })
}

// sortTimeline orders entries by time, then by lifecycle, so that steps of
// the same instant read in a stable order.
func sortTimeline(tl []TimelineEntry) {
	slices.SortStableFunc(tl, func(a, b TimelineEntry) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return stepOrder(a.Step) - stepOrder(b.Step)
	})
}

func stepOrder(s Step) int {
	return slices.Index([]Step{StepPlaced, StepConfirmed, StepShipped, StepDelivered, StepCompleted, StepCancelled}, s)
}

// ID is the order.
func (o *Order) ID() string { return o.id }

// UserID is the customer who placed the order.
func (o *Order) UserID() string { return o.userID }

// Status is the order's public status.
func (o *Order) Status() Status { return o.status }

// Total is the order total, when an event carrying it has been seen.
func (o *Order) Total() (Money, bool) {
	if o.total == nil {
		return Money{}, false
	}
	return *o.total, true
}

// CancellationReason says why a cancelled order was cancelled.
func (o *Order) CancellationReason() string { return o.reason }

// PlacedAt is when the order was placed.
func (o *Order) PlacedAt() time.Time { return o.placedAt }

// UpdatedAt is the time of the order's latest step.
func (o *Order) UpdatedAt() time.Time { return o.updatedAt }

// Timeline is the order's steps, oldest first.
func (o *Order) Timeline() []TimelineEntry { return slices.Clone(o.timeline) }

// Added returns the timeline entries recorded since the order was loaded,
// which the store must write.
func (o *Order) Added() []TimelineEntry { return slices.Clone(o.added) }
