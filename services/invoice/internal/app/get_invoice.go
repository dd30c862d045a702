package app

import (
	"context"
	"fmt"

	"github.com/shopmesh/shopmesh/services/invoice/internal/domain"
)

// Billing returns an order's invoice and credit notes to its owner. An
// order without invoice, or another customer's, is domain.ErrNotFound.
func (s *Service) Billing(ctx context.Context, userID, orderID string) (*domain.Billing, error) {
	b, err := s.billings.Billing(ctx, orderID)
	if err != nil {
		return nil, fmt.Errorf("invoice of order %s: %w", orderID, err)
	}
	if _, ok := b.Invoice(); !ok || b.UserID() != userID {
		return nil, fmt.Errorf("invoice of order %s: %w", orderID, domain.ErrNotFound)
	}
	return b, nil
}
