package app

import (
	"context"
	"fmt"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/inventory/internal/domain"
)

// AdjustStock changes a product's units on hand by delta on an
// administrator's request and returns the stock after the change. It
// publishes inventory.stock_adjusted.v1 and the product's new levels.
func (s *Service) AdjustStock(ctx context.Context, productID string, delta int) (domain.Stock, error) {
	var out domain.Stock
	err := s.repo.UpdateStock(ctx, productID, func(st *domain.Stock) (*domain.Stock, []outbox.Event, error) {
		if st == nil {
			return nil, nil, domain.ErrNotFound
		}
		before := st.Levels()
		if err := st.Adjust(delta); err != nil {
			return nil, nil, err
		}
		out = *st
		events := append([]outbox.Event{adjustedEvent(*st, delta, contracts.AdjustManual)}, s.levelEvents(before, *st)...)
		return st, events, nil
	})
	if err != nil {
		return domain.Stock{}, fmt.Errorf("adjust stock of product %s: %w", productID, err)
	}
	return out, nil
}
