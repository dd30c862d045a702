// Package app holds the customer service's use cases: keep each customer's
// profile and order history up to date from events, and show customers
// their own profile and history. It drives the domain and the store through
// the interfaces declared here; it must not know SQL, AMQP or HTTP.
package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/shopmesh/shopmesh/services/customer/internal/domain"
)

// Paging limits of History.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// Errors of the queries.
var (
	// ErrUnauthenticated is returned to a caller without an identity.
	ErrUnauthenticated = errors.New("authentication required")
	// ErrBadPageSize is returned for a page size outside 1..MaxPageSize.
	ErrBadPageSize = errors.New("page size out of range")
)

// ProfileFunc receives a user's profile (new and empty when unknown) and
// returns it changed, or nil to store nothing.
type ProfileFunc func(p *domain.Profile) (*domain.Profile, error)

// OrderFunc receives an order's history entry (nil when unknown) and
// returns the entry to store, or nil to store nothing.
type OrderFunc func(o *domain.Order) (*domain.Order, error)

// Cursor is where a history page ends: the placement time and id of its
// last order.
type Cursor struct {
	PlacedAt time.Time
	OrderID  string
}

// Store keeps the read model. Every method of one value runs in one unit of
// work: the store either owns its transactions or, inside a message handler,
// joins the handler's inbox transaction.
type Store interface {
	// UpdateProfile locks the user's profile (creating it when unknown),
	// calls fn and stores its result.
	UpdateProfile(ctx context.Context, userID string, fn ProfileFunc) error
	// UpdateOrder locks the order's history entry, calls fn and stores its
	// result with its new timeline entries.
	UpdateOrder(ctx context.Context, orderID string, fn OrderFunc) error
	// Profile returns a user's profile, or domain.ErrNotFound.
	Profile(ctx context.Context, userID string) (*domain.Profile, error)
	// OrdersCount counts a user's orders.
	OrdersCount(ctx context.Context, userID string) (int, error)
	// History returns up to limit of a user's orders with their timelines,
	// newest placement first, after the cursor when one is given.
	History(ctx context.Context, userID string, after *Cursor, limit int) ([]*domain.Order, error)
}

// Service runs the use cases.
type Service struct {
	store Store
}

// NewService returns the use cases over store.
func NewService(store Store) *Service { return &Service{store: store} }

// With returns the same use cases over another unit of work, such as a store
// joined to a message handler's transaction.
func (s *Service) With(store Store) *Service { return &Service{store: store} }

// Registered records a registration in the user's profile.
func (s *Service) Registered(ctx context.Context, userID, email, name string, at time.Time) error {
	return s.profile(ctx, userID, func(p *domain.Profile) (*domain.Profile, error) {
		p.Register(email, name, at)
		return p, nil
	})
}

// AddressChanged records an address change unless a newer one is known.
func (s *Service) AddressChanged(ctx context.Context, userID string, a domain.Address, at time.Time) error {
	return s.profile(ctx, userID, func(p *domain.Profile) (*domain.Profile, error) {
		if !p.ChangeAddress(a, at) {
			return nil, nil
		}
		return p, nil
	})
}

// Deactivated records a deactivation.
func (s *Service) Deactivated(ctx context.Context, userID string, at time.Time) error {
	return s.profile(ctx, userID, func(p *domain.Profile) (*domain.Profile, error) {
		p.Deactivate(at)
		return p, nil
	})
}

func (s *Service) profile(ctx context.Context, userID string, fn ProfileFunc) error {
	if err := s.store.UpdateProfile(ctx, userID, fn); err != nil {
		return fmt.Errorf("profile of %s: %w", userID, err)
	}
	return nil
}

// OrderChanged records a lifecycle event in the order's history entry,
// creating the entry for the first event seen, whichever it is.
func (s *Service) OrderChanged(ctx context.Context, orderID, userID string, c domain.Change) error {
	err := s.store.UpdateOrder(ctx, orderID, func(o *domain.Order) (*domain.Order, error) {
		if o == nil {
			var err error
			if o, err = domain.NewOrder(orderID, userID); err != nil {
				return nil, err
			}
		}
		changed, err := o.Apply(userID, c)
		if err != nil || !changed {
			return nil, err
		}
		return o, nil
	})
	if err != nil {
		return fmt.Errorf("history of order %s (%s): %w", orderID, c.Step, err)
	}
	return nil
}

// Me is a customer's profile with the number of orders in their history.
type Me struct {
	Profile     *domain.Profile
	OrdersCount int
}

// Me returns the caller's own profile; domain.ErrNotFound until their
// registration has been seen.
func (s *Service) Me(ctx context.Context, userID string) (Me, error) {
	if userID == "" {
		return Me{}, ErrUnauthenticated
	}
	if _, err := uuid.Parse(userID); err != nil {
		return Me{}, domain.ErrNotFound // no profile belongs to a malformed id
	}
	p, err := s.store.Profile(ctx, userID)
	if err == nil && !p.Registered() {
		err = domain.ErrNotFound
	}
	if err != nil {
		return Me{}, fmt.Errorf("profile of %s: %w", userID, err)
	}
	n, err := s.store.OrdersCount(ctx, userID)
	if err != nil {
		return Me{}, fmt.Errorf("orders of %s: %w", userID, err)
	}
	return Me{Profile: p, OrdersCount: n}, nil
}

// HistoryQuery pages through a customer's orders.
type HistoryQuery struct {
	// Limit is the page size (0: DefaultPageSize).
	Limit int
	// After is the previous page's Next.
	After *Cursor
}

// HistoryPage is one page, newest first; Next is nil on the last page.
type HistoryPage struct {
	Orders []*domain.Order
	Next   *Cursor
}

// History returns a page of the caller's own orders, newest first.
func (s *Service) History(ctx context.Context, userID string, q HistoryQuery) (HistoryPage, error) {
	if userID == "" {
		return HistoryPage{}, ErrUnauthenticated
	}
	if q.Limit == 0 {
		q.Limit = DefaultPageSize
	}
	if q.Limit < 1 || q.Limit > MaxPageSize {
		return HistoryPage{}, ErrBadPageSize
	}
	page := HistoryPage{Orders: []*domain.Order{}}
	if _, err := uuid.Parse(userID); err != nil {
		return page, nil
	}
	orders, err := s.store.History(ctx, userID, q.After, q.Limit+1)
	if err != nil {
		return HistoryPage{}, fmt.Errorf("history of %s: %w", userID, err)
	}
	page.Orders = orders
	if len(orders) > q.Limit {
		page.Orders = orders[:q.Limit]
		last := page.Orders[q.Limit-1]
		page.Next = &Cursor{PlacedAt: last.PlacedAt(), OrderID: last.ID()}
	}
	return page, nil
}
