// Package app holds the analytics service's use cases: turn each event into
// its contribution to the aggregates, and answer the administrators'
// reports. It must not know SQL, HTTP or the wire format of events.
package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/services/analytics/internal/domain"
)

// ErrUnhandled wraps an event of a type the service has no rule for: the
// event adapter dead-letters it.
var ErrUnhandled = errors.New("event type is not aggregated")

// Event is a decoded event: Payload is a pointer to its contracts struct at
// the latest version of its type.
type Event struct {
	ID         string
	Type       string
	OccurredAt time.Time
	Payload    any
}

// Tx is the store inside the transaction that also claims the event in the
// inbox: the aggregates change with the claim or not at all.
type Tx interface {
	Apply(ctx context.Context, c *domain.Contribution) error
}

// Reports reads the aggregates over a period.
type Reports interface {
	Sales(ctx context.Context, p domain.Period) ([]domain.Sales, error)
	Outcomes(ctx context.Context, p domain.Period) (domain.Outcomes, error)
	TopProducts(ctx context.Context, p domain.Period, limit int) ([]domain.ProductRank, error)
	Stock(ctx context.Context, p domain.Period, limit int) ([]domain.StockSummary, error)
	Funnel(ctx context.Context, p domain.Period, stages FunnelStages) (domain.Funnel, error)
}

// FunnelStages names the event type that marks each funnel stage after the
// first (carts touched: distinct users whose cart changed).
type FunnelStages struct {
	Checkout, Placed, Confirmed, Delivered string
}

// ShopFunnel is the shop's funnel: checkout, placement, confirmation,
// delivery.
func ShopFunnel() FunnelStages {
	return FunnelStages{
		Checkout:  contracts.TypeCartCheckedOutV1,
		Placed:    contracts.TypeOrderPlacedV2, // older versions are counted as the latest they upcast to
		Confirmed: contracts.TypeOrderConfirmedV1,
		Delivered: contracts.TypeOrderDeliveredV1,
	}
}

// Config are the use cases' settings.
type Config struct {
	// TopProducts is how many products the sales report ranks (1..100).
	TopProducts int
	// StockProducts is how many products the sales report's stock section
	// lists, the most committed first (1..1000).
	StockProducts int
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.TopProducts < 1 || c.TopProducts > 100 {
		errs = append(errs, fmt.Errorf("top products %d is not between 1 and 100", c.TopProducts))
	}
	if c.StockProducts < 1 || c.StockProducts > 1000 {
		errs = append(errs, fmt.Errorf("stock products %d is not between 1 and 1000", c.StockProducts))
	}
	return errors.Join(errs...)
}

// Service runs the use cases.
type Service struct {
	reports Reports
	cfg     Config
	now     func() time.Time
}

// NewService returns the use cases; now defaults to time.Now.
func NewService(reports Reports, cfg Config, now func() time.Time) (*Service, error) {
	if reports == nil {
		return nil, errors.New("analytics service: reports are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Service{reports: reports, cfg: cfg, now: now}, nil
}

// Apply adds one event to the aggregates inside tx. Exactly-once is the
// inbox's job: Apply is called once per event id.
func (s *Service) Apply(ctx context.Context, tx Tx, ev Event) error {
	c, err := Contribute(ev)
	if err != nil {
		return err
	}
	if err := tx.Apply(ctx, c); err != nil {
		return fmt.Errorf("aggregate %s %s: %w", ev.Type, ev.ID, err)
	}
	return nil
}

// Contribute says what one event adds to the aggregates. Every event counts
// towards the per-type daily counts (the funnel's checkouts, placements,
// confirmations and deliveries among them); the cases below add what is
// specific to each type, and every type the registry lets analytics consume
// has a case.
func Contribute(ev Event) (*domain.Contribution, error) {
	c, err := domain.NewContribution(ev.ID, ev.Type, ev.OccurredAt)
	if err != nil {
		return nil, err
	}
	switch e := ev.Payload.(type) {
	case *contracts.UserRegisteredV1, *contracts.UserAddressChangedV1, *contracts.UserDeactivatedV1:

	case *contracts.ProductCreatedV1:
		c.Describe(e.ProductID, e.SKU, e.Name)
	case *contracts.ProductUpdatedV1:
		c.Describe(e.ProductID, e.SKU, e.Name)
	case *contracts.PriceChangedV1:
		c.Describe(e.ProductID, e.SKU, "")

	case *contracts.StockReservedV1:
		err = moveLines(c, domain.StockReserved, e.Lines)
	case *contracts.StockReservationFailedV1:
		for _, s := range e.Shortages {
			if err = c.MoveStock(s.ProductID, domain.StockReservationFailed, 1); err != nil {
				break
			}
		}
	case *contracts.StockReleasedV1:
		err = moveLines(c, domain.StockReleased, e.Lines)
	case *contracts.StockCommittedV1:
		err = moveLines(c, domain.StockCommitted, e.Lines)
	case *contracts.StockReturnedV1:
		err = moveLines(c, domain.StockReturned, e.Lines)
	case *contracts.StockAdjustedV1:
		c.Describe(e.ProductID, e.SKU, "")
		err = c.MoveStock(e.ProductID, domain.StockAdjusted, e.Delta)
	case *contracts.StockLevelChangedV1:
		c.Describe(e.ProductID, e.SKU, "")
	case *contracts.LowStockV1:
		c.Describe(e.ProductID, e.SKU, "")
		err = c.MoveStock(e.ProductID, domain.StockLowAlert, 1)

	case *contracts.CartLineUpdatedV1:
		c.Describe(e.ProductID, e.SKU, "")
		err = c.TouchCart(e.UserID)
	case *contracts.CartLineRemovedV1:
		err = c.TouchCart(e.UserID)
	case *contracts.CartCheckedOutV1:

	case *contracts.OrderPlacedV2:
		for _, l := range e.Lines {
			c.Describe(l.ProductID, l.SKU, l.Name)
		}
	case *contracts.OrderConfirmedV1:
		lines := make([]domain.SoldLine, 0, len(e.Lines))
		for _, l := range e.Lines {
			lines = append(lines, domain.SoldLine{ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity, UnitPrice: money(l.UnitPrice)})
		}
		err = c.Sell(money(e.Total), lines)
	case *contracts.OrderCancelledV1:
		err = c.End(domain.OutcomeCancelled, string(e.Reason))
	case *contracts.OrderCompletedV1:
		err = c.End(domain.OutcomeCompleted, "")
	case *contracts.OrderPaymentRequestedV1, *contracts.OrderCancellationRequestedV1, *contracts.OrderRefundRequestedV1,
		*contracts.OrderShippedV1, *contracts.OrderDeliveredV1:

	case *contracts.PaymentRefundedV1:
		err = c.RefundPayment(money(e.Amount))
	case *contracts.PaymentAuthorizedV1, *contracts.PaymentDeclinedV1:

	case *contracts.ShipmentCreatedV1, *contracts.ShipmentDispatchedV1, *contracts.ShipmentDeliveredV1,
		*contracts.ShipmentFailedV1, *contracts.ShipmentCancelledV1:
	case *contracts.InvoiceIssuedV1, *contracts.CreditNoteIssuedV1:
	case *contracts.LoyaltyEnrolledV1, *contracts.PointsAwardedV1, *contracts.EnrolmentBonusFailedV1, *contracts.EnrolmentRolledBackV1:
	case *contracts.NotificationSentV1:

	default:
		return nil, fmt.Errorf("%w: %s (%T)", ErrUnhandled, ev.Type, ev.Payload)
	}
	if err != nil {
		return nil, fmt.Errorf("event %s (%s): %w", ev.ID, ev.Type, err)
	}
	return c, nil
}

func moveLines(c *domain.Contribution, kind domain.StockKind, lines []contracts.StockLine) error {
	for _, l := range lines {
		if err := c.MoveStock(l.ProductID, kind, l.Quantity); err != nil {
			return err
		}
	}
	return nil
}

func money(m contracts.Money) domain.Money {
	return domain.Money{AmountMinor: m.AmountMinor, Currency: m.Currency}
}

// SalesReport reports sales, refunds, outcomes, top products and stock
// movements over a period (see domain.NewPeriod for the defaults).
func (s *Service) SalesReport(ctx context.Context, from, to *time.Time) (domain.SalesReport, error) {
	p, err := domain.NewPeriod(from, to, s.now())
	if err != nil {
		return domain.SalesReport{}, err
	}
	days, err := s.reports.Sales(ctx, p)
	if err != nil {
		return domain.SalesReport{}, err
	}
	outcomes, err := s.reports.Outcomes(ctx, p)
	if err != nil {
		return domain.SalesReport{}, err
	}
	top, err := s.reports.TopProducts(ctx, p, s.cfg.TopProducts)
	if err != nil {
		return domain.SalesReport{}, err
	}
	stock, err := s.reports.Stock(ctx, p, s.cfg.StockProducts)
	if err != nil {
		return domain.SalesReport{}, err
	}
	return domain.NewSalesReport(p, days, outcomes, top, stock), nil
}

// FunnelReport reports how far shoppers got over a period.
func (s *Service) FunnelReport(ctx context.Context, from, to *time.Time) (domain.Funnel, error) {
	p, err := domain.NewPeriod(from, to, s.now())
	if err != nil {
		return domain.Funnel{}, err
	}
	f, err := s.reports.Funnel(ctx, p, ShopFunnel())
	if err != nil {
		return domain.Funnel{}, err
	}
	f.Period = p
	return f, nil
}
