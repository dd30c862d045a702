package app

import (
	"context"
	"fmt"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/inventory/internal/domain"
)

// ReserveOrder reserves the lines of a placed order, all or nothing, and
// publishes inventory.stock_reserved.v1 or inventory.stock_reservation_failed.v1.
// An order has exactly one reservation: once inventory has decided (or the
// order was cancelled first), placing it again changes and publishes nothing.
func (s *Service) ReserveOrder(ctx context.Context, orderID string, lines []domain.Line) error {
	demand, err := domain.Demand(lines)
	if err != nil {
		return fmt.Errorf("reserve stock for order %s: %w", orderID, invalidEvent(err))
	}
	ids := make([]string, len(demand))
	for i, l := range demand {
		ids[i] = l.ProductID
	}
	err = s.repo.UpdateReservation(ctx, orderID, ids, func(existing *domain.Reservation, stock domain.Stocks) (*domain.Reservation, []outbox.Event, error) {
		if existing != nil {
			return nil, nil, nil
		}
		before := snapshot(stock)
		res, short, err := domain.Reserve(orderID, demand, stock)
		if err != nil {
			return nil, nil, invalidEvent(err)
		}
		if len(short) > 0 {
			shortages := make([]contracts.Shortage, len(short))
			for i, sh := range short {
				shortages[i] = contracts.Shortage{ProductID: sh.ProductID, Requested: sh.Requested, Available: sh.Available}
			}
			return &res, []outbox.Event{{
				Type:        contracts.TypeStockReservationFailedV1,
				AggregateID: res.OrderID(),
				Payload:     contracts.StockReservationFailedV1{OrderID: res.OrderID(), Shortages: shortages},
			}}, nil
		}
		events := []outbox.Event{{
			Type:        contracts.TypeStockReservedV1,
			AggregateID: res.OrderID(),
			Payload:     contracts.StockReservedV1{OrderID: res.OrderID(), Lines: stockLines(res.Lines())},
		}}
		events = append(events, s.changedLevels(before, stock, res.Lines())...)
		return &res, events, nil
	})
	if err != nil {
		return fmt.Errorf("reserve stock for order %s: %w", orderID, err)
	}
	return nil
}
