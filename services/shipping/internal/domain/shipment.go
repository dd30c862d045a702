// Package domain holds the shipping service's rules: one shipment per
// confirmed order, moving created -> dispatched -> delivered, or failing,
// or cancelled while not yet dispatched. It is pure: no I/O, no clock, no id
// generation, no knowledge of events, carriers' APIs or HTTP.
package domain

import (
	"errors"
	"fmt"
	"time"
)

// Errors of the shipment rules.
var (
	// ErrNotFound is returned by stores for an order without a shipment.
	ErrNotFound = errors.New("shipment not found")
	// ErrAlreadyDispatched is returned for cancelling a shipment that has
	// left (dispatched, delivered) or ended (failed).
	ErrAlreadyDispatched = errors.New("shipment already dispatched or finished")
	// ErrAlreadyCancelled is returned for cancelling a cancelled shipment.
	ErrAlreadyCancelled = errors.New("shipment already cancelled")
	// ErrInvalid is wrapped by the errors of a shipment that cannot be
	// built from what it was given.
	ErrInvalid = errors.New("invalid shipment")
	// ErrTransition is returned for a carrier step the shipment's status
	// does not allow.
	ErrTransition = errors.New("shipment status does not allow this step")
)

// Status is where a shipment stands.
type Status string

// Shipment statuses: created waits for the carrier's pickup; dispatched is on
// its way; delivered, failed and cancelled are final.
const (
	StatusCreated    Status = "created"
	StatusDispatched Status = "dispatched"
	StatusDelivered  Status = "delivered"
	StatusFailed     Status = "failed"
	StatusCancelled  Status = "cancelled"
)

// Final reports whether the status never changes again.
func (s Status) Final() bool {
	return s == StatusDelivered || s == StatusFailed || s == StatusCancelled
}

func (s Status) valid() bool {
	return s == StatusCreated || s == StatusDispatched || s.Final()
}

// Address is the delivery address.
type Address struct {
	Name, Line1, Line2, City, PostalCode, Country string
}

func (a Address) validate() error {
	if a.Name == "" || a.Line1 == "" || a.City == "" || a.PostalCode == "" {
		return errors.New("address needs a name, line1, city and postal code")
	}
	if !isCountryCode(a.Country) {
		return fmt.Errorf("country %q is not an ISO 3166-1 alpha-2 code", a.Country)
	}
	return nil
}

// Line is a quantity of one product in the parcel.
type Line struct {
	ProductID string
	Quantity  int
}

// Step is one status the shipment reached, and when.
type Step struct {
	Status Status
	At     time.Time
}

// Shipment is the shipment of one order.
type Shipment struct {
	id, orderID, userID string
	carrier             string
	tracking            string
	address             Address
	lines               []Line
	status              Status
	failureReason       string
	failureDetail       string
	// dueAt is when the carrier's next step is due; zero when the shipment
	// waits for nothing (final).
	dueAt   time.Time
	history []Step
	// changes are the steps taken since the shipment was loaded, which the
	// caller announces.
	changes []Step
}

// NewShipment returns a created shipment whose pickup is due at dispatchAt.
func NewShipment(id, orderID, userID, carrier string, address Address, lines []Line, now, dispatchAt time.Time) (*Shipment, error) {
	switch {
	case id == "" || orderID == "" || userID == "":
		return nil, fmt.Errorf("%w: id, order id and user id are required", ErrInvalid)
	case carrier == "":
		return nil, fmt.Errorf("%w: carrier is required", ErrInvalid)
	case len(lines) == 0:
		return nil, fmt.Errorf("%w: no lines", ErrInvalid)
	}
	if err := address.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	for _, l := range lines {
		if l.ProductID == "" || l.Quantity < 1 {
			return nil, fmt.Errorf("%w: line %+v", ErrInvalid, l)
		}
	}
	s := &Shipment{id: id, orderID: orderID, userID: userID, carrier: carrier, address: address,
		lines: append([]Line(nil), lines...), status: StatusCreated, dueAt: dispatchAt}
	s.step(StatusCreated, now)
	return s, nil
}

// Stored is a shipment as the store holds it.
type Stored struct {
	ID, OrderID, UserID string
	Carrier             string
	Tracking            string
	Address             Address
	Lines               []Line
	Status              Status
	FailureReason       string
	FailureDetail       string
	DueAt               time.Time
	History             []Step
}

// FromDatabase rebuilds a shipment from its stored state.
func FromDatabase(st Stored) (*Shipment, error) {
	if !st.Status.valid() {
		return nil, fmt.Errorf("shipment %s: unknown status %q", st.ID, st.Status)
	}
	if len(st.History) == 0 || st.History[len(st.History)-1].Status != st.Status {
		return nil, fmt.Errorf("shipment %s: history does not end in its status %s", st.ID, st.Status)
	}
	if st.Status.Final() != st.DueAt.IsZero() {
		return nil, fmt.Errorf("shipment %s: status %s with due time %v", st.ID, st.Status, st.DueAt)
	}
	s, err := NewShipment(st.ID, st.OrderID, st.UserID, st.Carrier, st.Address, st.Lines, st.History[0].At, st.DueAt)
	if err != nil {
		return nil, err
	}
	s.tracking, s.status = st.Tracking, st.Status
	s.failureReason, s.failureDetail = st.FailureReason, st.FailureDetail
	s.history = append([]Step(nil), st.History...)
	s.changes = nil
	return s, nil
}

// ID is the shipment's id.
func (s *Shipment) ID() string { return s.id }

// OrderID is the order shipped.
func (s *Shipment) OrderID() string { return s.orderID }

// UserID is the customer.
func (s *Shipment) UserID() string { return s.userID }

// Carrier is the carrier's name.
func (s *Shipment) Carrier() string { return s.carrier }

// Tracking is the carrier's tracking number, set at dispatch.
func (s *Shipment) Tracking() string { return s.tracking }

// Address is the delivery address.
func (s *Shipment) Address() Address { return s.address }

// Lines are what the parcel holds.
func (s *Shipment) Lines() []Line { return append([]Line(nil), s.lines...) }

// Status is where the shipment stands.
func (s *Shipment) Status() Status { return s.status }

// FailureReason and FailureDetail say why a failed shipment failed.
func (s *Shipment) FailureReason() string { return s.failureReason }

// FailureDetail explains the failure for people.
func (s *Shipment) FailureDetail() string { return s.failureDetail }

// DueAt is when the carrier's next step is due (zero for a final shipment).
func (s *Shipment) DueAt() time.Time { return s.dueAt }

// History is every status the shipment reached, oldest first.
func (s *Shipment) History() []Step { return append([]Step(nil), s.history...) }

// Changes are the steps taken since the shipment was loaded or created.
func (s *Shipment) Changes() []Step { return append([]Step(nil), s.changes...) }

// Due reports whether the carrier's next step is due at now.
func (s *Shipment) Due(now time.Time) bool {
	return !s.status.Final() && !s.dueAt.After(now)
}

// Dispatch records the carrier's pickup; delivery is due at deliverAt.
func (s *Shipment) Dispatch(tracking string, now, deliverAt time.Time) error {
	if s.status != StatusCreated {
		return fmt.Errorf("dispatch shipment %s (%s): %w", s.id, s.status, ErrTransition)
	}
	if tracking == "" {
		return errors.New("dispatch: tracking number is required")
	}
	s.tracking, s.dueAt = tracking, deliverAt
	s.step(StatusDispatched, now)
	return nil
}

// Deliver records the delivery of a dispatched shipment.
func (s *Shipment) Deliver(now time.Time) error {
	if s.status != StatusDispatched {
		return fmt.Errorf("deliver shipment %s (%s): %w", s.id, s.status, ErrTransition)
	}
	s.dueAt = time.Time{}
	s.step(StatusDelivered, now)
	return nil
}

// Fail records that the carrier cannot deliver the shipment.
func (s *Shipment) Fail(reason, detail string, now time.Time) error {
	if s.status != StatusCreated && s.status != StatusDispatched {
		return fmt.Errorf("fail shipment %s (%s): %w", s.id, s.status, ErrTransition)
	}
	if reason == "" {
		return errors.New("fail: reason is required")
	}
	s.failureReason, s.failureDetail, s.dueAt = reason, detail, time.Time{}
	s.step(StatusFailed, now)
	return nil
}

// Cancel cancels a shipment the carrier has not picked up; it will never be
// dispatched. A shipment that left or ended returns ErrAlreadyDispatched, a
// cancelled one ErrAlreadyCancelled.
func (s *Shipment) Cancel(now time.Time) error {
	switch s.status {
	case StatusCreated:
	case StatusCancelled:
		return fmt.Errorf("cancel shipment %s: %w", s.id, ErrAlreadyCancelled)
	default:
		return fmt.Errorf("cancel shipment %s (%s): %w", s.id, s.status, ErrAlreadyDispatched)
	}
	s.dueAt = time.Time{}
	s.step(StatusCancelled, now)
	return nil
}

func (s *Shipment) step(status Status, at time.Time) {
	s.status = status
	s.history = append(s.history, Step{Status: status, At: at})
	s.changes = append(s.changes, Step{Status: status, At: at})
}

// isCountryCode reports whether s has the shape of an ISO 3166-1 alpha-2 code.
func isCountryCode(s string) bool {
	if len(s) != 2 {
		return false
	}
	for _, c := range s {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
