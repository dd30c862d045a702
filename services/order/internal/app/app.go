// Package app holds the order service's use cases: placing an order from a
// checkout, applying the saga's replies, and the customer's reads and
// cancellation. It coordinates the domain and the store; it must not know
// SQL, messages or HTTP, and it never holds a transaction itself: the store
// owns it.
package app

import (
	"context"
	"time"

	"github.com/shopmesh/shopmesh/services/order/internal/domain"
)

// UpdateFunc changes an order and returns the events to publish. Returning
// an error leaves the order and the outbox untouched.
type UpdateFunc func(o *domain.Order) ([]domain.Event, error)

// Orders stores orders and writes the events of their changes to the outbox
// in the same transaction.
type Orders interface {
	// Create stores a new order with its events. It reports false, and
	// writes nothing, when an order with that id exists already.
	Create(ctx context.Context, o *domain.Order, events []domain.Event) (bool, error)
	// Update loads the order (domain.ErrNotFound if there is none), calls fn
	// and, when fn changed it, stores the result and writes fn's events.
	// Concurrent updates of one order take turns.
	Update(ctx context.Context, id domain.OrderID, fn UpdateFunc) error
}

// Reader reads orders.
type Reader interface {
	// Get returns the order or domain.ErrNotFound.
	Get(ctx context.Context, id domain.OrderID) (*domain.Order, error)
	// Revision returns the order's owner and revision (every stored change
	// raises it), or domain.ErrNotFound: whether it changed, without
	// reading all of it.
	Revision(ctx context.Context, id domain.OrderID) (domain.UserID, int, error)
	// ListByUser returns up to limit of the user's orders, newest first,
	// starting after the given position (nil: from the newest).
	ListByUser(ctx context.Context, user domain.UserID, after *Cursor, limit int) ([]*domain.Order, error)
}

// Cursor is a position in a customer's order list: the last order seen.
type Cursor struct {
	PlacedAt time.Time
	ID       domain.OrderID
}

// Clock returns the current time at the store's precision (microseconds),
// so that what is stored compares equal to what was decided.
func Clock() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
