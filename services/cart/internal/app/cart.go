package app

import (
	"context"
	"fmt"

	"github.com/shopmesh/shopmesh/services/cart/internal/domain"
)

// Cart returns a user's cart.
func (s *Service) Cart(ctx context.Context, userID string) (domain.Cart, error) {
	c, err := s.repo.Cart(ctx, userID)
	if err != nil {
		return domain.Cart{}, fmt.Errorf("cart of %s: %w", userID, err)
	}
	return c, nil
}
