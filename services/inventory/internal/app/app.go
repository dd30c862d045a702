// Package app holds inventory's use cases: creating stock for new products,
// reserving, committing and compensating orders' stock, administrator
// adjustments, low-stock alerts and automatic restocking. Each use case runs
// one domain decision inside one repository transaction and names the events
// that transaction publishes. It must not know HTTP, AMQP or SQL.
package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/inventory/internal/domain"
)

// StockUpdate decides the new state of one product's stock. It is given the
// stored stock, or nil when the product has none, and returns the stock to
// store (nil stores nothing) and the events to publish with it.
type StockUpdate func(s *domain.Stock) (*domain.Stock, []outbox.Event, error)

// ReservationUpdate decides the new state of one order's reservation. It is
// given the stored reservation (nil when there is none) and the locked stock
// of every product it or the caller names; it mutates that stock, and returns
// the reservation to store (nil stores nothing) and the events to publish.
type ReservationUpdate func(r *domain.Reservation, stock domain.Stocks) (*domain.Reservation, []outbox.Event, error)

// Repository stores stock and reservations. Each update runs in one
// transaction that also writes the returned events to the outbox; the
// adapter locks what it loads, so concurrent updates of the same product or
// order apply one after the other.
type Repository interface {
	// Stock returns a product's stock, or domain.ErrNotFound.
	Stock(ctx context.Context, productID string) (domain.Stock, error)
	// UpdateStock loads and locks the stock of productID and applies fn.
	UpdateStock(ctx context.Context, productID string, fn StockUpdate) error
	// UpdateReservation loads and locks the reservation of orderID, then the
	// stock of its lines and of productIDs, and applies fn.
	UpdateReservation(ctx context.Context, orderID string, productIDs []string, fn ReservationUpdate) error
}

// Policy is the service's configurable behaviour.
type Policy struct {
	// LowStockThreshold: inventory.low_stock.v1 is published when a change
	// takes a product's availability to or below it. Negative disables it.
	LowStockThreshold int
	// AutoRestock adds RestockQuantity units to a product when its low-stock
	// event is handled and availability is still at or below the threshold.
	AutoRestock     bool
	RestockQuantity int
}

// Service runs inventory's use cases against one repository: the service's
// database for HTTP requests, or the transaction of a consumed message.
type Service struct {
	repo   Repository
	policy Policy
}

// New returns the use cases over repo.
func New(repo Repository, policy Policy) *Service {
	return &Service{repo: repo, policy: policy}
}

// ErrInvalidEvent marks an event whose content breaks a rule of the domain
// (not the contract): retrying cannot fix it.
var ErrInvalidEvent = errors.New("invalid event")

func invalidEvent(err error) error {
	if errors.Is(err, domain.ErrInvalid) {
		return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	return err
}
