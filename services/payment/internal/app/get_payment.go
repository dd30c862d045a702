package app

import (
	"context"
	"fmt"

	"github.com/shopmesh/shopmesh/services/payment/internal/domain"
)

// Payment returns the payment of an order to its owner. Another customer's
// payment is reported as domain.ErrNotFound, so its existence is not
// revealed.
func (s *Service) Payment(ctx context.Context, userID, orderID string) (*domain.Payment, error) {
	p, err := s.payments.Payment(ctx, orderID)
	if err != nil {
		return nil, fmt.Errorf("payment of order %s: %w", orderID, err)
	}
	if p.UserID() != userID {
		return nil, fmt.Errorf("payment of order %s: %w", orderID, domain.ErrNotFound)
	}
	return p, nil
}
