// Package app holds the invoice service's use cases: issue the invoice of a
// confirmed order, issue a credit note for each refund, and show an order's
// invoice and credit notes to its owner. It drives the domain and the store
// through the interfaces declared here; it must not know SQL, AMQP or HTTP.
package app

import (
	"context"
	"fmt"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/invoice/internal/domain"
)

// Numbers hands out document numbers without gaps: a number taken in a
// transaction that rolls back is taken again by the next one.
type Numbers interface {
	Next(ctx context.Context, series domain.Series, year int) (domain.Number, error)
}

// UpdateFunc receives the order's billing (nil when there is none yet) and
// the number sequence of the same transaction, and returns the billing to
// store (nil to store nothing) and the events to publish.
type UpdateFunc func(b *domain.Billing, numbers Numbers) (*domain.Billing, []outbox.Event, error)

// Billings stores each order's billing documents. Every method of one value
// runs in one unit of work: the store either owns its transactions or,
// inside a message handler, joins the handler's inbox transaction.
type Billings interface {
	// Billing returns the billing of an order, or domain.ErrNotFound.
	Billing(ctx context.Context, orderID string) (*domain.Billing, error)
	// Update locks the order's billing, calls fn and stores its result and
	// events atomically.
	Update(ctx context.Context, orderID string, fn UpdateFunc) error
}

// Service runs the use cases.
type Service struct {
	billings Billings
	vatRate  int
	now      func() time.Time
	newID    func() string
}

// Option adjusts a Service (tests fix the clock and ids).
type Option func(*Service)

// WithClock sets the clock.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithIDs sets the id generator.
func WithIDs(newID func() string) Option { return func(s *Service) { s.newID = newID } }

// NewService returns the use cases; vatRate (basis points, 0 to 10000) is
// the VAT included in prices.
func NewService(billings Billings, vatRate int, opts ...Option) (*Service, error) {
	if vatRate < 0 || vatRate > 10000 {
		return nil, fmt.Errorf("VAT rate %d basis points is not between 0 and 10000", vatRate)
	}
	s := &Service{billings: billings, vatRate: vatRate, now: time.Now, newID: outbox.NewID}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// With returns the same use cases over another unit of work, such as a store
// joined to a message handler's transaction.
func (s *Service) With(billings Billings) *Service {
	c := *s
	c.billings = billings
	return &c
}

// creditPending issues a credit note for every refund of b not credited yet.
func (s *Service) creditPending(ctx context.Context, b *domain.Billing, numbers Numbers, now time.Time) ([]outbox.Event, error) {
	var events []outbox.Event
	for _, r := range b.Uncredited() {
		number, err := numbers.Next(ctx, domain.SeriesCreditNote, now.Year())
		if err != nil {
			return nil, err
		}
		n, err := b.IssueCreditNote(s.newID(), number, r.RefundID, now)
		if err != nil {
			return nil, err
		}
		events = append(events, outbox.Event{
			Type: contracts.TypeCreditNoteIssuedV1, AggregateID: b.OrderID(), OccurredAt: now,
			Payload: contracts.CreditNoteIssuedV1{
				CreditNoteID: n.ID, Number: n.Number.String(), InvoiceID: n.InvoiceID, OrderID: b.OrderID(),
				UserID: b.UserID(), RefundID: n.RefundID, Amount: toMoney(n.Amount),
			},
		})
	}
	return events, nil
}

func toMoney(m domain.Money) contracts.Money {
	return contracts.Money{AmountMinor: m.AmountMinor, Currency: m.Currency}
}
