package app

import (
	"context"
	"fmt"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/inventory/internal/domain"
)

// CreateStock creates the stock of a product the catalogue added, with
// initial units on hand, and publishes the initial adjustment with its
// levels. A product that already has stock is left as it is: the catalogue
// creates each product once, so a second creation is a replay.
func (s *Service) CreateStock(ctx context.Context, productID, sku string, initial int) error {
	err := s.repo.UpdateStock(ctx, productID, func(existing *domain.Stock) (*domain.Stock, []outbox.Event, error) {
		if existing != nil {
			return nil, nil, nil
		}
		st, err := domain.NewStock(productID, sku, initial)
		if err != nil {
			return nil, nil, invalidEvent(err)
		}
		// A new product has no levels before, so they are reported even when
		// zero, and an initial stock at or below the threshold is already low.
		lv := st.Levels()
		events := []outbox.Event{
			adjustedEvent(st, initial, contracts.AdjustInitial),
			{Type: contracts.TypeStockLevelChangedV1, AggregateID: st.ProductID(), Payload: contracts.StockLevelChangedV1{
				ProductID: st.ProductID(), SKU: st.SKU(), OnHand: lv.OnHand, Reserved: lv.Reserved, Available: lv.Available}},
		}
		if s.policy.LowStockThreshold >= 0 && lv.Available <= s.policy.LowStockThreshold {
			events = append(events, s.lowStockEvent(st))
		}
		return &st, events, nil
	})
	if err != nil {
		return fmt.Errorf("create stock of product %s: %w", productID, err)
	}
	return nil
}
