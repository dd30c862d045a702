// Package domain holds the payment service's business rules: one payment per
// order, authorized or declined at most once, refunded at most once. It is
// pure: no I/O, no clock, no id generation, no knowledge of events or HTTP.
package domain

import (
	"errors"
	"fmt"
	"time"
)

// Errors of the payment rules.
var (
	// ErrNotFound is returned by stores for an order without a payment.
	ErrNotFound = errors.New("payment not found")
	// ErrDecided is returned for an authorization or decline of a payment
	// whose outcome is already known.
	ErrDecided = errors.New("payment outcome already decided")
	// ErrAlreadyRefunded is returned for a second refund of a payment.
	ErrAlreadyRefunded = errors.New("payment already refunded")
	// ErrNotCaptured is returned for a refund of a payment that holds no
	// money (pending or declined).
	ErrNotCaptured = errors.New("payment not captured")
	// ErrRefundAmount is returned for a refund in another currency or of
	// more than was captured.
	ErrRefundAmount = errors.New("refund amount does not match the captured amount")
	// ErrRequestMismatch is returned when a repeated payment request for an
	// order names another customer or amount than the first.
	ErrRequestMismatch = errors.New("payment request differs from the order's first request")
)

// Money is an amount in integer minor units of an ISO 4217 currency.
type Money struct {
	AmountMinor int64
	Currency    string
}

// NewMoney returns a non-negative amount of a currency.
func NewMoney(amountMinor int64, currency string) (Money, error) {
	if amountMinor < 0 {
		return Money{}, fmt.Errorf("amount %d is negative", amountMinor)
	}
	if !isCurrencyCode(currency) {
		return Money{}, fmt.Errorf("currency %q is not an ISO 4217 code", currency)
	}
	return Money{AmountMinor: amountMinor, Currency: currency}, nil
}

// Status is where a payment stands.
type Status string

// Payment statuses. A payment starts pending, is decided once (authorized,
// which for the simulated provider includes capture, or declined) and an
// authorized payment may be refunded once.
const (
	StatusPending    Status = "pending"
	StatusAuthorized Status = "authorized"
	StatusDeclined   Status = "declined"
	StatusRefunded   Status = "refunded"
)

// Outcome is what one payment request led to.
type Outcome string

// Request outcomes.
const (
	OutcomeAuthorized Outcome = "authorized"
	OutcomeDeclined   Outcome = "declined"
	// OutcomeNoAnswer: the provider did not answer; the payment stays pending.
	OutcomeNoAnswer Outcome = "no_answer"
	// OutcomeRepeated: the outcome was already known and was announced again.
	OutcomeRepeated Outcome = "repeated"
)

// Attempt records one payment request of the order.
type Attempt struct {
	RequestID string
	Outcome   Outcome
	At        time.Time
}

// Refund is the one refund of a payment.
type Refund struct {
	ID                string
	Amount            Money
	Reason            string
	ProviderReference string
	At                time.Time
}

// Payment is the payment of one order.
type Payment struct {
	id, orderID, userID string
	amount              Money
	status              Status
	providerReference   string
	declineReason       string
	// outcomeEventID is the id of the event that announced the decision, so
	// that a repeated request re-announces that very event (consumers that
	// already applied it recognise it in their inbox).
	outcomeEventID string
	decidedAt      time.Time
	attempts       []Attempt
	refund         *Refund
	createdAt      time.Time
	updatedAt      time.Time
}

// NewPayment returns the pending payment of an order.
func NewPayment(id, orderID, userID string, amount Money, now time.Time) (*Payment, error) {
	switch {
	case id == "":
		return nil, errors.New("new payment: id is required")
	case orderID == "":
		return nil, errors.New("new payment: order id is required")
	case userID == "":
		return nil, errors.New("new payment: user id is required")
	}
	if _, err := NewMoney(amount.AmountMinor, amount.Currency); err != nil {
		return nil, fmt.Errorf("new payment: %w", err)
	}
	return &Payment{id: id, orderID: orderID, userID: userID, amount: amount, status: StatusPending,
		createdAt: now, updatedAt: now}, nil
}

// Stored is a payment as the store holds it.
type Stored struct {
	ID, OrderID, UserID string
	Amount              Money
	Status              Status
	ProviderReference   string
	DeclineReason       string
	OutcomeEventID      string
	DecidedAt           time.Time
	Attempts            []Attempt
	Refund              *Refund
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// FromDatabase rebuilds a payment from its stored state, checking that the
// state is one the rules can reach.
func FromDatabase(s Stored) (*Payment, error) {
	p, err := NewPayment(s.ID, s.OrderID, s.UserID, s.Amount, s.CreatedAt)
	if err != nil {
		return nil, err
	}
	decided := s.Status == StatusAuthorized || s.Status == StatusDeclined || s.Status == StatusRefunded
	switch {
	case s.Status != StatusPending && !decided:
		return nil, fmt.Errorf("payment %s: unknown status %q", s.ID, s.Status)
	case decided && s.OutcomeEventID == "":
		return nil, fmt.Errorf("payment %s: %s without an outcome event", s.ID, s.Status)
	case (s.Status == StatusRefunded) != (s.Refund != nil):
		return nil, fmt.Errorf("payment %s: status %s does not match its refund", s.ID, s.Status)
	}
	p.status, p.providerReference, p.declineReason = s.Status, s.ProviderReference, s.DeclineReason
	p.outcomeEventID, p.decidedAt = s.OutcomeEventID, s.DecidedAt
	p.attempts = append([]Attempt(nil), s.Attempts...)
	if s.Refund != nil {
		r := *s.Refund
		p.refund = &r
	}
	p.updatedAt = s.UpdatedAt
	return p, nil
}

// ID is the payment's id.
func (p *Payment) ID() string { return p.id }

// OrderID is the order paid for.
func (p *Payment) OrderID() string { return p.orderID }

// UserID is the payer.
func (p *Payment) UserID() string { return p.userID }

// Amount is the amount requested (and, once authorized, captured).
func (p *Payment) Amount() Money { return p.amount }

// Status is where the payment stands.
func (p *Payment) Status() Status { return p.status }

// ProviderReference is the provider's authorization reference.
func (p *Payment) ProviderReference() string { return p.providerReference }

// DeclineReason is the provider's decline code of a declined payment.
func (p *Payment) DeclineReason() string { return p.declineReason }

// OutcomeEventID is the id of the event that announced the decision.
func (p *Payment) OutcomeEventID() string { return p.outcomeEventID }

// DecidedAt is when the provider's answer arrived.
func (p *Payment) DecidedAt() time.Time { return p.decidedAt }

// Attempts are the payment requests received, oldest first.
func (p *Payment) Attempts() []Attempt { return append([]Attempt(nil), p.attempts...) }

// Refund is the payment's refund, if any.
func (p *Payment) Refund() (Refund, bool) {
	if p.refund == nil {
		return Refund{}, false
	}
	return *p.refund, true
}

// CreatedAt is when the first request arrived.
func (p *Payment) CreatedAt() time.Time { return p.createdAt }

// UpdatedAt is when the payment last changed.
func (p *Payment) UpdatedAt() time.Time { return p.updatedAt }

// Decided reports whether the provider's answer is known.
func (p *Payment) Decided() bool { return p.status != StatusPending }

// Matches reports whether a repeated request is for the same customer and
// amount as the payment.
func (p *Payment) Matches(userID string, amount Money) error {
	if userID != p.userID || amount != p.amount {
		return fmt.Errorf("order %s: %w", p.orderID, ErrRequestMismatch)
	}
	return nil
}

// RecordAttempt notes one payment request and its outcome. A request id
// already recorded is ignored.
func (p *Payment) RecordAttempt(requestID string, outcome Outcome, at time.Time) {
	for _, a := range p.attempts {
		if a.RequestID == requestID {
			return
		}
	}
	p.attempts = append(p.attempts, Attempt{RequestID: requestID, Outcome: outcome, At: at})
	p.updatedAt = at
}

// Authorize records the provider's authorization (and capture) of the
// pending payment; eventID is the id of the event announcing it.
func (p *Payment) Authorize(reference, eventID string, at time.Time) error {
	if err := p.decide(eventID, at); err != nil {
		return err
	}
	if reference == "" {
		return errors.New("authorize: provider reference is required")
	}
	p.status, p.providerReference = StatusAuthorized, reference
	return nil
}

// Decline records the provider's refusal of the pending payment; eventID is
// the id of the event announcing it.
func (p *Payment) Decline(reason, eventID string, at time.Time) error {
	if err := p.decide(eventID, at); err != nil {
		return err
	}
	if reason == "" {
		return errors.New("decline: reason is required")
	}
	p.status, p.declineReason = StatusDeclined, reason
	return nil
}

func (p *Payment) decide(eventID string, at time.Time) error {
	if p.Decided() {
		return fmt.Errorf("payment %s is %s: %w", p.id, p.status, ErrDecided)
	}
	if eventID == "" {
		return errors.New("decide: outcome event id is required")
	}
	p.outcomeEventID, p.decidedAt, p.updatedAt = eventID, at, at
	return nil
}

// CanRefund reports whether amount can be refunded now: the payment must be
// captured, not yet refunded, and amount at most what was captured, in its
// currency.
func (p *Payment) CanRefund(amount Money) error {
	switch p.status {
	case StatusRefunded:
		return fmt.Errorf("payment %s: %w", p.id, ErrAlreadyRefunded)
	case StatusAuthorized:
	default:
		return fmt.Errorf("payment %s is %s: %w", p.id, p.status, ErrNotCaptured)
	}
	if amount.Currency != p.amount.Currency || amount.AmountMinor > p.amount.AmountMinor || amount.AmountMinor < 0 {
		return fmt.Errorf("refund %d %s of payment %s capturing %d %s: %w",
			amount.AmountMinor, amount.Currency, p.id, p.amount.AmountMinor, p.amount.Currency, ErrRefundAmount)
	}
	return nil
}

// MarkRefunded records the payment's one refund.
func (p *Payment) MarkRefunded(r Refund) error {
	if err := p.CanRefund(r.Amount); err != nil {
		return err
	}
	if r.ID == "" || r.ProviderReference == "" || r.Reason == "" {
		return errors.New("refund: id, provider reference and reason are required")
	}
	p.refund = &r
	p.status = StatusRefunded
	p.updatedAt = r.At
	return nil
}

// RefundOutcome is what one refund request led to.
type RefundOutcome string

// Refund request outcomes. Only RefundRefunded moves money and publishes an
// event; the others are recorded no-ops.
const (
	RefundRefunded RefundOutcome = "refunded"
	// RefundDuplicate: the payment was already refunded.
	RefundDuplicate RefundOutcome = "already_refunded"
	// RefundNotCaptured: the payment holds no money (pending or declined).
	RefundNotCaptured RefundOutcome = "not_captured"
	// RefundNoPayment: the order has no payment, or not the one named.
	RefundNoPayment RefundOutcome = "no_payment"
)

// RefundRequest records one refund request and its outcome.
type RefundRequest struct {
	RequestID string
	OrderID   string
	PaymentID string
	Amount    Money
	Reason    string
	Outcome   RefundOutcome
	At        time.Time
}

// isCurrencyCode reports whether s has the shape of an ISO 4217 code.
func isCurrencyCode(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, c := range s {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
