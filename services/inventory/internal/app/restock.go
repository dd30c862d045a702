package app

import (
	"context"
	"fmt"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/inventory/internal/domain"
)

// Restock is the reaction to a low-stock alert: with automatic restocking on
// and the product's availability still at or below the threshold (an
// administrator may have restocked meanwhile), it adds the configured
// quantity, an ordinary adjustment that publishes inventory.stock_adjusted.v1
// with reason auto_restock and the new levels. Each alert restocks at most
// once, because the alert is consumed through the inbox.
func (s *Service) Restock(ctx context.Context, productID string) error {
	if !s.policy.AutoRestock {
		return nil
	}
	err := s.repo.UpdateStock(ctx, productID, func(st *domain.Stock) (*domain.Stock, []outbox.Event, error) {
		if st == nil || st.Available() > s.policy.LowStockThreshold {
			return nil, nil, nil
		}
		delta := min(s.policy.RestockQuantity, domain.MaxAdjust, domain.MaxOnHand-st.OnHand())
		if delta <= 0 {
			return nil, nil, nil
		}
		before := st.Levels()
		if err := st.Adjust(delta); err != nil {
			return nil, nil, err
		}
		events := append([]outbox.Event{adjustedEvent(*st, delta, contracts.AdjustAutoRestock)}, s.levelEvents(before, *st)...)
		return st, events, nil
	})
	if err != nil {
		return fmt.Errorf("restock product %s: %w", productID, err)
	}
	return nil
}
