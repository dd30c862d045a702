package app

import (
	"context"
	"fmt"
	"slices"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/inventory/internal/domain"
)

// CancelOrder undoes what a cancelled order holds (see
// domain.Reservation.Cancel): held units are released and
// inventory.stock_released.v1 published, committed units are returned when
// the order lists a stock compensation and inventory.stock_returned.v1
// published. Each happens at most once per order. A cancelled order that
// inventory never reserved changes no stock and publishes nothing; it is
// recorded so that its placement, should it still arrive, reserves nothing.
func (s *Service) CancelOrder(ctx context.Context, orderID string, compensations []contracts.Compensation) error {
	stockCompensation := slices.Contains(compensations, contracts.CompensateReleaseStock) ||
		slices.Contains(compensations, contracts.CompensateReturnStock)
	err := s.repo.UpdateReservation(ctx, orderID, nil, func(res *domain.Reservation, stock domain.Stocks) (*domain.Reservation, []outbox.Event, error) {
		if res == nil {
			void, err := domain.Void(orderID)
			if err != nil {
				return nil, nil, invalidEvent(err)
			}
			return &void, nil, nil
		}
		before := snapshot(stock)
		undo, err := res.Cancel(stockCompensation, stock)
		if err != nil {
			return nil, nil, err
		}
		var event outbox.Event
		switch undo {
		case domain.UndoReleased:
			event = outbox.Event{Type: contracts.TypeStockReleasedV1, AggregateID: res.OrderID(),
				Payload: contracts.StockReleasedV1{OrderID: res.OrderID(), Lines: stockLines(res.Lines())}}
		case domain.UndoReturned:
			event = outbox.Event{Type: contracts.TypeStockReturnedV1, AggregateID: res.OrderID(),
				Payload: contracts.StockReturnedV1{OrderID: res.OrderID(), Lines: stockLines(res.Lines())}}
		default:
			return nil, nil, nil
		}
		return res, append([]outbox.Event{event}, s.changedLevels(before, stock, res.Lines())...), nil
	})
	if err != nil {
		return fmt.Errorf("cancel stock of order %s: %w", orderID, err)
	}
	return nil
}
