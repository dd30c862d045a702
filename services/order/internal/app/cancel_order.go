package app

import (
	"context"
	"fmt"

	"github.com/shopmesh/shopmesh/services/order/internal/domain"
)

// Cancel is the customer's cancellation of their own order: immediate
// before payment, a request to shipping for a confirmed order, refused
// after dispatch (domain.ErrAlreadyShipped). It returns the order as it
// stands afterwards.
func (s *Service) Cancel(ctx context.Context, user domain.UserID, id domain.OrderID) (*domain.Order, error) {
	var result *domain.Order
	err := s.orders.Update(ctx, id, func(o *domain.Order) ([]domain.Event, error) {
		if !o.BelongsTo(user) {
			return nil, domain.ErrNotFound
		}
		result = o
		return s.machine.Cancel(o, s.now())
	})
	if err != nil {
		return nil, fmt.Errorf("cancel order %s: %w", id, err)
	}
	return result, nil
}
