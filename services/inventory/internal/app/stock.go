package app

import (
	"context"
	"fmt"

	"github.com/shopmesh/shopmesh/services/inventory/internal/domain"
)

// Stock returns a product's stock levels.
func (s *Service) Stock(ctx context.Context, productID string) (domain.Stock, error) {
	st, err := s.repo.Stock(ctx, productID)
	if err != nil {
		return domain.Stock{}, fmt.Errorf("stock of product %s: %w", productID, err)
	}
	return st, nil
}
