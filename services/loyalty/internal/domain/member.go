// Package domain holds the loyalty service's business rules: who is a member,
// the enrolment saga (enrolled, bonus granted or failed, rolled back), how
// many points an order earns, and that a member's points are credited at most
// once per reason and order. It is pure: no I/O, no clock, no ids, no
// knowledge of events or HTTP.
package domain

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Errors of the loyalty rules.
var (
	// ErrNotFound is returned by stores for a user who is not known.
	ErrNotFound = errors.New("member not found")
	// ErrNotEnrolling is returned for a bonus step of a member whose bonus is
	// already settled (granted, failed or rolled back): the step happened.
	ErrNotEnrolling = errors.New("enrolment bonus already settled")
	// ErrNotBonusFailed is returned for a rollback of a member whose bonus
	// did not fail, or whose enrolment was already rolled back.
	ErrNotBonusFailed = errors.New("enrolment has no failed bonus to roll back")
	// ErrNotMember is returned for an award to a user who is not an active
	// member (never enrolled, bonus still pending, or rolled back).
	ErrNotMember = errors.New("user is not an active loyalty member")
	// ErrFrozen is returned for an award to a deactivated user's membership.
	ErrFrozen = errors.New("membership is frozen")
	// ErrNoPoints is returned for an order too small to earn a point.
	ErrNoPoints = errors.New("order earns no points")
	// ErrAlreadyAwarded is returned by stores when the ledger already holds
	// an entry for the same reason and order (or the one enrolment bonus).
	ErrAlreadyAwarded = errors.New("points already awarded")
	// ErrBalanceOverflow is returned for an award that would exceed MaxPoints.
	ErrBalanceOverflow = errors.New("balance would exceed the maximum")
	// ErrInvalid wraps arguments that break the rules (bad ids, amounts).
	ErrInvalid = errors.New("invalid loyalty input")
)

// MaxPoints bounds a balance and any single award (the events' int32 range).
const MaxPoints = math.MaxInt32

// Status is where a membership stands in the enrolment saga.
type Status string

// Membership statuses. enrolling → active (bonus granted) or
// enrolling → bonus_failed → rolled_back. not_enrolled is a user seen only
// through a deactivation, never enrolled.
const (
	StatusEnrolling   Status = "enrolling"
	StatusActive      Status = "active"
	StatusBonusFailed Status = "bonus_failed"
	StatusRolledBack  Status = "rolled_back"
	StatusNotEnrolled Status = "not_enrolled"
)

func (s Status) valid() bool {
	switch s {
	case StatusEnrolling, StatusActive, StatusBonusFailed, StatusRolledBack, StatusNotEnrolled:
		return true
	}
	return false
}

// Reason says what earned ledger points.
type Reason string

// Ledger reasons.
const (
	ReasonEnrolmentBonus Reason = "enrolment_bonus"
	ReasonOrderCompleted Reason = "order_completed"
)

// Entry is one credit in a member's points ledger.
type Entry struct {
	Points int
	Reason Reason
	// OrderID is set for ReasonOrderCompleted.
	OrderID string
	At      time.Time
}

// Money is an amount in integer minor units of an ISO 4217 currency.
type Money struct {
	AmountMinor int64
	Currency    string
}

// PointsFor is what an order total earns: one point per whole currency unit
// (EUR 12.99 earns 12), capped at MaxPoints.
func PointsFor(total Money) (int, error) {
	if total.AmountMinor < 0 {
		return 0, fmt.Errorf("%w: amount %d is negative", ErrInvalid, total.AmountMinor)
	}
	if len(total.Currency) != 3 || strings.ToUpper(total.Currency) != total.Currency {
		return 0, fmt.Errorf("%w: currency %q is not an ISO 4217 code", ErrInvalid, total.Currency)
	}
	units := total.AmountMinor / minorPerUnit(total.Currency)
	if units > MaxPoints {
		return 0, fmt.Errorf("%w: %d points", ErrBalanceOverflow, units)
	}
	return int(units), nil
}

// minorPerUnit is the number of minor units in one unit of currency
// (ISO 4217 exponents; 2 unless listed).
func minorPerUnit(currency string) int64 {
	switch currency {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
		return 1
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 1000
	}
	return 100
}

// BonusPolicy decides the enrolment bonus.
type BonusPolicy struct {
	// Points credited on enrolment; at least 1.
	Points int
	// FailDomain, when set, makes the bonus fail for members whose email is
	// at that domain (e.g. "bonus-fails.example"): a deterministic failure
	// for tests and demos of the rollback path.
	FailDomain string
}

// Validate reports a policy that cannot work.
func (p BonusPolicy) Validate() error {
	if p.Points < 1 || p.Points > MaxPoints {
		return fmt.Errorf("enrolment bonus %d is not between 1 and %d", p.Points, MaxPoints)
	}
	if strings.ContainsAny(p.FailDomain, "@ \t\n") {
		return fmt.Errorf("bonus failure domain %q is not a domain name", p.FailDomain)
	}
	return nil
}

// refusal says why p refuses the bonus of an email, or "" when it grants it.
func (p BonusPolicy) refusal(email string) string {
	if p.FailDomain == "" {
		return ""
	}
	_, domain, ok := strings.Cut(email, "@")
	if ok && strings.EqualFold(domain, p.FailDomain) {
		return "bonus refused for the email domain " + p.FailDomain
	}
	return ""
}

// Member is one user's loyalty membership and balance.
type Member struct {
	userID     string
	email      string
	status     Status
	frozen     bool
	balance    int
	failReason string
	createdAt  time.Time
	updatedAt  time.Time
	// added are the ledger entries credited since the member was loaded.
	added []Entry
}

// Enrol returns the new membership of a registered user; its bonus follows
// as its own step (GrantBonus).
func Enrol(userID, email string, now time.Time) (*Member, error) {
	if userID == "" {
		return nil, fmt.Errorf("%w: user id is required", ErrInvalid)
	}
	return &Member{userID: userID, email: email, status: StatusEnrolling, createdAt: now, updatedAt: now}, nil
}

// Deactivated returns the record of a user deactivated before any
// registration was seen (history replayed out of order): frozen and never
// enrolled, so a late registration does not enrol them.
func Deactivated(userID string, now time.Time) (*Member, error) {
	if userID == "" {
		return nil, fmt.Errorf("%w: user id is required", ErrInvalid)
	}
	return &Member{userID: userID, status: StatusNotEnrolled, frozen: true, createdAt: now, updatedAt: now}, nil
}

// Stored is a membership as the store holds it.
type Stored struct {
	UserID     string
	Email      string
	Status     Status
	Frozen     bool
	Balance    int
	FailReason string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// FromDatabase rebuilds a stored membership, rejecting one that breaks the
// rules.
func FromDatabase(s Stored) (*Member, error) {
	switch {
	case s.UserID == "":
		return nil, errors.New("stored member: user id is empty")
	case !s.Status.valid():
		return nil, fmt.Errorf("stored member %s: unknown status %q", s.UserID, s.Status)
	case s.Balance < 0:
		return nil, fmt.Errorf("stored member %s: negative balance %d", s.UserID, s.Balance)
	}
	return &Member{userID: s.UserID, email: s.Email, status: s.Status, frozen: s.Frozen, balance: s.Balance,
		failReason: s.FailReason, createdAt: s.CreatedAt, updatedAt: s.UpdatedAt}, nil
}

// UserID is the member's user.
func (m *Member) UserID() string { return m.userID }

// Email is the address the user registered with ("" if never seen).
func (m *Member) Email() string { return m.email }

// Status is where the membership stands.
func (m *Member) Status() Status { return m.status }

// Frozen reports whether the user was deactivated: no more points.
func (m *Member) Frozen() bool { return m.frozen }

// Balance is the member's points.
func (m *Member) Balance() int { return m.balance }

// FailReason is why the enrolment bonus failed ("" unless it did).
func (m *Member) FailReason() string { return m.failReason }

// CreatedAt is when the membership record was created.
func (m *Member) CreatedAt() time.Time { return m.createdAt }

// UpdatedAt is the last change.
func (m *Member) UpdatedAt() time.Time { return m.updatedAt }

// Enrolled reports whether the user is in the programme: enrolled and not
// rolled back (the bonus may still be settling).
func (m *Member) Enrolled() bool {
	return m.status == StatusEnrolling || m.status == StatusActive || m.status == StatusBonusFailed
}

// Added returns the ledger entries credited since the member was loaded,
// which the store must write.
func (m *Member) Added() []Entry { return append([]Entry(nil), m.added...) }

// GrantBonus settles the enrolment bonus of an enrolling member: it credits
// the policy's bonus and activates the membership, or, when the policy
// refuses it or the user was deactivated meanwhile, records why and moves
// to bonus_failed, returning the reason. A member whose bonus is already
// settled gets ErrNotEnrolling.
func (m *Member) GrantBonus(p BonusPolicy, now time.Time) (granted *Entry, failReason string, err error) {
	if m.status != StatusEnrolling {
		return nil, "", ErrNotEnrolling
	}
	if err := p.Validate(); err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	reason := p.refusal(m.email)
	if reason == "" && m.frozen {
		reason = "the account was deactivated"
	}
	if reason != "" {
		m.status, m.failReason, m.updatedAt = StatusBonusFailed, reason, now
		return nil, reason, nil
	}
	e, err := m.credit(p.Points, ReasonEnrolmentBonus, "", now)
	if err != nil {
		return nil, "", err
	}
	m.status = StatusActive
	return &e, "", nil
}

// RollBack undoes an enrolment whose bonus failed. The user stays
// registered and is no longer a member.
func (m *Member) RollBack(now time.Time) error {
	if m.status != StatusBonusFailed {
		return ErrNotBonusFailed
	}
	m.status, m.updatedAt = StatusRolledBack, now
	return nil
}

// AwardOrder credits the points a completed order earns. Only active,
// unfrozen members earn points; the store guarantees at most one award per
// order (ErrAlreadyAwarded).
func (m *Member) AwardOrder(orderID string, total Money, now time.Time) (Entry, error) {
	if orderID == "" {
		return Entry{}, fmt.Errorf("%w: order id is required", ErrInvalid)
	}
	switch {
	case m.status != StatusActive:
		return Entry{}, ErrNotMember
	case m.frozen:
		return Entry{}, ErrFrozen
	}
	points, err := PointsFor(total)
	if err != nil {
		return Entry{}, err
	}
	if points == 0 {
		return Entry{}, ErrNoPoints
	}
	return m.credit(points, ReasonOrderCompleted, orderID, now)
}

// Freeze stops the member earning points (the user was deactivated); it
// reports whether anything changed.
func (m *Member) Freeze(now time.Time) bool {
	if m.frozen {
		return false
	}
	m.frozen, m.updatedAt = true, now
	return true
}

func (m *Member) credit(points int, reason Reason, orderID string, now time.Time) (Entry, error) {
	if points < 1 {
		return Entry{}, fmt.Errorf("%w: %d points", ErrInvalid, points)
	}
	if points > MaxPoints-m.balance {
		return Entry{}, ErrBalanceOverflow
	}
	e := Entry{Points: points, Reason: reason, OrderID: orderID, At: now}
	m.balance += points
	m.updatedAt = now
	m.added = append(m.added, e)
	return e, nil
}
