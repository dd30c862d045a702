package app

import (
	"context"
	"fmt"
	"time"

	"github.com/shopmesh/shopmesh/services/order/internal/domain"
)

// Service is what customers do with their orders through the API.
type Service struct {
	orders  Orders
	reader  Reader
	machine domain.Saga
	now     func() time.Time
}

// NewService returns the customer-facing use cases.
func NewService(orders Orders, reader Reader, machine domain.Saga, now func() time.Time) *Service {
	return &Service{orders: orders, reader: reader, machine: machine, now: now}
}

// Get returns one of the user's orders. Another customer's order is
// domain.ErrNotFound, exactly like one that does not exist.
func (s *Service) Get(ctx context.Context, user domain.UserID, id domain.OrderID) (*domain.Order, error) {
	o, err := s.reader.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("get order %s: %w", id, err)
	}
	if !o.BelongsTo(user) {
		return nil, fmt.Errorf("get order %s: %w", id, domain.ErrNotFound)
	}
	return o, nil
}

// Revision returns the revision of one of the user's orders, which rises
// with every change of it; another customer's order is domain.ErrNotFound,
// as in Get. A read waiting for a change checks it before reading the
// whole order again.
func (s *Service) Revision(ctx context.Context, user domain.UserID, id domain.OrderID) (int, error) {
	owner, revision, err := s.reader.Revision(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("order %s revision: %w", id, err)
	}
	if owner != user {
		return 0, fmt.Errorf("order %s revision: %w", id, domain.ErrNotFound)
	}
	return revision, nil
}
