// Package app holds the shipping service's use cases: create the shipment of
// a confirmed order, advance shipments as the carrier picks them up and
// delivers them, cancel a shipment the carrier has not picked up, and show a
// shipment to its owner. It drives the domain, the carrier and the store
// through the interfaces declared here; it must not know SQL, AMQP or HTTP.
package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/shipping/internal/domain"
)

// UpdateFunc receives a shipment (nil when the order has none) and returns
// the shipment to store (nil to store nothing) and the events to publish.
type UpdateFunc func(s *domain.Shipment) (*domain.Shipment, []outbox.Event, error)

// Shipments stores shipments. Every method of one value runs in one unit of
// work: the store either owns its transactions or, inside a message handler,
// joins the handler's inbox transaction.
type Shipments interface {
	// Shipment returns the shipment of an order, or domain.ErrNotFound.
	Shipment(ctx context.Context, orderID string) (*domain.Shipment, error)
	// Update locks the order's shipment, calls fn and stores its result and
	// events atomically.
	Update(ctx context.Context, orderID string, fn UpdateFunc) error
}

// DueShipments hands out shipments whose carrier step is due.
type DueShipments interface {
	// UpdateDue locks up to limit shipments due at now that no one else has
	// locked, calls fn on each and stores each result with its events, and
	// returns how many it stored. A shipment whose fn fails is left as it
	// was (and due), the others are stored.
	UpdateDue(ctx context.Context, now time.Time, limit int, fn UpdateFunc) (int, error)
}

// CarrierOutcome is the carrier's answer to a pickup or a delivery.
type CarrierOutcome struct {
	// Tracking is the tracking number given at pickup.
	Tracking string
	// FailureReason, when set, says the carrier cannot deliver
	// (contracts.FailureUndeliverable, ...); FailureDetail explains it.
	FailureReason string
	FailureDetail string
}

// Carrier is the carrier that picks up and delivers parcels.
type Carrier interface {
	// Name is the carrier's name shown to customers.
	Name() string
	// Pickup collects a created shipment.
	Pickup(ctx context.Context, s *domain.Shipment) (CarrierOutcome, error)
	// Deliver hands a dispatched shipment to the customer.
	Deliver(ctx context.Context, s *domain.Shipment) (CarrierOutcome, error)
}

// Timing is when the carrier acts.
type Timing struct {
	// Dispatch is the time from creation to pickup.
	Dispatch time.Duration
	// Delivery is the time from pickup to delivery.
	Delivery time.Duration
}

// Service runs the use cases.
type Service struct {
	shipments Shipments
	due       DueShipments
	carrier   Carrier
	timing    Timing
	now       func() time.Time
	newID     func() string
}

// Option adjusts a Service (tests fix the clock and ids).
type Option func(*Service)

// WithClock sets the clock.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithIDs sets the id generator.
func WithIDs(newID func() string) Option { return func(s *Service) { s.newID = newID } }

// NewService returns the use cases over the shipments, the queue of due
// shipments, and the carrier.
func NewService(shipments Shipments, due DueShipments, carrier Carrier, timing Timing, opts ...Option) (*Service, error) {
	if timing.Dispatch < 0 || timing.Delivery < 0 {
		return nil, fmt.Errorf("carrier timing %+v has a negative delay", timing)
	}
	s := &Service{shipments: shipments, due: due, carrier: carrier, timing: timing, now: time.Now, newID: outbox.NewID}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// With returns the same use cases over another unit of work, such as a store
// joined to a message handler's transaction.
func (s *Service) With(shipments Shipments) *Service {
	c := *s
	c.shipments = shipments
	return &c
}

// ErrNoShipmentYet is returned for a cancellation request of an order whose
// shipment does not exist; the contract promises it always does, so the
// request is retried (and, failing that, dead-lettered for an operator).
var ErrNoShipmentYet = errors.New("no shipment for the order yet")
