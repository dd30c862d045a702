// Package app holds the loyalty service's use cases: enrol a registered
// user, settle the enrolment bonus (granted, or failed and rolled back),
// award points for completed orders, freeze deactivated users, and show a
// member their points. It drives the domain and the store through the
// interfaces declared here and decides which events each step publishes;
// it must not know SQL, AMQP or HTTP.
package app

import (
	"context"
	"errors"
	"time"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/loyalty/internal/domain"
)

// UpdateFunc receives a user's membership (nil when the user is unknown) and
// returns the membership to store (nil to store nothing) and the events to
// publish with it.
type UpdateFunc func(m *domain.Member) (*domain.Member, []outbox.Event, error)

// Members stores memberships and their ledgers. Every method of one value
// runs in one unit of work: the store either owns its transactions or,
// inside a message handler, joins the handler's inbox transaction.
type Members interface {
	// Member returns a user's membership, or domain.ErrNotFound.
	Member(ctx context.Context, userID string) (*domain.Member, error)
	// Entries returns up to limit of a user's ledger entries, newest first.
	Entries(ctx context.Context, userID string, limit int) ([]domain.Entry, error)
	// Update locks the user's membership, calls fn and stores its result, its
	// new ledger entries and its events atomically. A ledger entry that
	// already exists (same order and reason, or a second enrolment bonus)
	// makes Update return domain.ErrAlreadyAwarded having written nothing.
	Update(ctx context.Context, userID string, fn UpdateFunc) error
}

// Service runs the use cases.
type Service struct {
	members Members
	bonus   domain.BonusPolicy
	now     func() time.Time
}

// Option adjusts a Service (tests fix the clock).
type Option func(*Service)

// WithClock sets the clock.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// NewService returns the use cases over members with the given bonus policy.
func NewService(members Members, bonus domain.BonusPolicy, opts ...Option) (*Service, error) {
	if members == nil {
		return nil, errors.New("loyalty service: members store is required")
	}
	if err := bonus.Validate(); err != nil {
		return nil, err
	}
	s := &Service{members: members, bonus: bonus, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// With returns the same use cases over another unit of work, such as a store
// joined to a message handler's transaction.
func (s *Service) With(members Members) *Service {
	c := *s
	c.members = members
	return &c
}
