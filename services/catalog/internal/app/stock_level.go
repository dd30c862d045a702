package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/catalog/internal/domain"
)

// ApplyStockLevel keeps a product's availability from inventory's report of
// its levels at asOf; reports older than the one applied are ignored. A
// report about a product the catalogue does not hold changes nothing (the
// catalogue creates every product before inventory knows it, so there is no
// product to wait for).
func (s *Service) ApplyStockLevel(ctx context.Context, productID string, available int, asOf time.Time) error {
	_, err := s.repo.Update(ctx, productID, func(p *domain.Product) ([]outbox.Event, error) {
		p.ApplyStockLevel(available, asOf)
		return nil, nil
	})
	if errors.Is(err, domain.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stock level of product %s: %w", productID, err)
	}
	return nil
}
