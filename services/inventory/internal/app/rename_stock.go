package app

import (
	"context"
	"fmt"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/inventory/internal/domain"
)

// RenameStock keeps the stock keeping unit that inventory's events carry in
// step with the catalogue. A product without stock is ignored: its creation
// is what creates the stock.
func (s *Service) RenameStock(ctx context.Context, productID, sku string) error {
	err := s.repo.UpdateStock(ctx, productID, func(st *domain.Stock) (*domain.Stock, []outbox.Event, error) {
		if st == nil || st.SKU() == sku {
			return nil, nil, nil
		}
		if err := st.Rename(sku); err != nil {
			return nil, nil, invalidEvent(err)
		}
		return st, nil, nil
	})
	if err != nil {
		return fmt.Errorf("rename stock of product %s: %w", productID, err)
	}
	return nil
}
