package app

import (
	"context"
	"fmt"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/inventory/internal/domain"
)

// CommitOrder ships a confirmed order's reserved units out of stock and
// publishes inventory.stock_committed.v1. A reservation already committed, or
// released because the order was cancelled first, is left as it is. An order
// that was never reserved is domain.ErrNotReserved: the saga and inventory
// disagree, and an operator must look.
func (s *Service) CommitOrder(ctx context.Context, orderID string) error {
	err := s.repo.UpdateReservation(ctx, orderID, nil, func(res *domain.Reservation, stock domain.Stocks) (*domain.Reservation, []outbox.Event, error) {
		if res == nil {
			return nil, nil, domain.ErrNotReserved
		}
		before := snapshot(stock)
		changed, err := res.Commit(stock)
		if err != nil || !changed {
			return nil, nil, err
		}
		events := []outbox.Event{{
			Type:        contracts.TypeStockCommittedV1,
			AggregateID: res.OrderID(),
			Payload:     contracts.StockCommittedV1{OrderID: res.OrderID(), Lines: stockLines(res.Lines())},
		}}
		events = append(events, s.changedLevels(before, stock, res.Lines())...)
		return res, events, nil
	})
	if err != nil {
		return fmt.Errorf("commit stock of order %s: %w", orderID, err)
	}
	return nil
}
