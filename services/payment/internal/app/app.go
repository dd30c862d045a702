// Package app holds the payment service's use cases: authorize a requested
// payment, refund it once, show it to its owner. It drives the domain, the
// payment provider and the store through the interfaces declared here; it
// must not know SQL, AMQP or HTTP.
package app

import (
	"context"
	"errors"
	"time"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/payment/internal/domain"
)

// UpdateFunc receives the order's payment (nil when there is none yet) and
// returns the payment to store (nil to store nothing) and the events to
// publish with it.
type UpdateFunc func(p *domain.Payment) (*domain.Payment, []outbox.Event, error)

// Payments stores payments. Every method of one value runs in one unit of
// work: the store either owns its transactions or, inside a message handler,
// joins the handler's inbox transaction.
type Payments interface {
	// Payment returns the payment of an order, or domain.ErrNotFound.
	Payment(ctx context.Context, orderID string) (*domain.Payment, error)
	// Update locks the order's payment, calls fn and stores its result and
	// events atomically.
	Update(ctx context.Context, orderID string, fn UpdateFunc) error
	// RecordRefundRequest keeps a refund request and its outcome.
	RecordRefundRequest(ctx context.Context, r domain.RefundRequest) error
}

// ErrNoAnswer is returned by a Provider that did not answer in time. The
// payment stays pending; the order's own payment timeout decides.
var ErrNoAnswer = errors.New("payment provider did not answer")

// AuthorizeRequest asks the provider to authorize and capture an amount.
type AuthorizeRequest struct {
	// IdempotencyKey makes a repeated call (after a rolled-back transaction)
	// return the first answer instead of charging again.
	IdempotencyKey string
	Amount         domain.Money
	Token          string
}

// Authorization is the provider's answer.
type Authorization struct {
	Approved bool
	// Reference identifies an approved authorization at the provider.
	Reference string
	// DeclineCode says why a payment was declined.
	DeclineCode string
}

// RefundRequest asks the provider to refund part or all of an authorization.
type RefundRequest struct {
	IdempotencyKey         string
	AuthorizationReference string
	Amount                 domain.Money
}

// Provider is the payment provider. Calls must be idempotent per
// IdempotencyKey: the service calls it inside its transaction, so a call can
// be repeated when that transaction fails after the provider answered.
type Provider interface {
	Authorize(ctx context.Context, req AuthorizeRequest) (Authorization, error)
	// Refund returns the provider's refund reference.
	Refund(ctx context.Context, req RefundRequest) (string, error)
}

// Service runs the use cases.
type Service struct {
	payments Payments
	provider Provider
	now      func() time.Time
	newID    func() string
}

// Option adjusts a Service (tests fix the clock and ids).
type Option func(*Service)

// WithClock sets the clock.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithIDs sets the id generator.
func WithIDs(newID func() string) Option { return func(s *Service) { s.newID = newID } }

// NewService returns the use cases over payments and provider.
func NewService(payments Payments, provider Provider, opts ...Option) *Service {
	s := &Service{payments: payments, provider: provider, now: time.Now, newID: outbox.NewID}
	for _, o := range opts {
		o(s)
	}
	return s
}

// With returns the same use cases over another unit of work, such as a store
// joined to a message handler's transaction.
func (s *Service) With(payments Payments) *Service {
	c := *s
	c.payments = payments
	return &c
}
