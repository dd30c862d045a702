package app

import (
	"context"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/shipping/internal/domain"
)

// CreateShipment is a confirmed order to ship.
type CreateShipment struct {
	OrderID string
	UserID  string
	Address domain.Address
	Lines   []domain.Line
}

// CreateShipment creates the order's one shipment, due for pickup after the
// dispatch delay, and publishes shipping.shipment_created.v1. An order that
// already has a shipment keeps it and nothing is published.
func (s *Service) CreateShipment(ctx context.Context, cmd CreateShipment) error {
	return s.shipments.Update(ctx, cmd.OrderID, func(sh *domain.Shipment) (*domain.Shipment, []outbox.Event, error) {
		if sh != nil {
			return nil, nil, nil
		}
		now := s.now()
		sh, err := domain.NewShipment(s.newID(), cmd.OrderID, cmd.UserID, s.carrier.Name(), cmd.Address, cmd.Lines,
			now, now.Add(s.timing.Dispatch))
		if err != nil {
			return nil, nil, err
		}
		lines := make([]contracts.StockLine, 0, len(cmd.Lines))
		for _, l := range sh.Lines() {
			lines = append(lines, contracts.StockLine{ProductID: l.ProductID, Quantity: l.Quantity})
		}
		a := sh.Address()
		return sh, []outbox.Event{{
			Type: contracts.TypeShipmentCreatedV1, AggregateID: sh.OrderID(), OccurredAt: now,
			Payload: contracts.ShipmentCreatedV1{
				ShipmentID: sh.ID(), OrderID: sh.OrderID(), UserID: sh.UserID(), Carrier: sh.Carrier(),
				Address: contracts.Address{Name: a.Name, Line1: a.Line1, Line2: a.Line2, City: a.City,
					PostalCode: a.PostalCode, Country: a.Country},
				Lines: lines,
			},
		}}, nil
	})
}
