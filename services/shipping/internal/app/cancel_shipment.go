package app

import (
	"context"
	"errors"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/shipping/internal/domain"
)

// CancelOutcome is what a cancellation led to.
type CancelOutcome string

// Cancellation outcomes. Only CancelCancelled publishes an event.
const (
	CancelCancelled CancelOutcome = "cancelled"
	// CancelTooLate: the carrier had picked the shipment up, or it ended.
	CancelTooLate CancelOutcome = "too_late"
	// CancelAlready: the shipment was cancelled before.
	CancelAlready CancelOutcome = "already_cancelled"
	// CancelNoShipment: the order has no shipment.
	CancelNoShipment CancelOutcome = "no_shipment"
)

// CancelShipment is an order's request to stop its shipment.
type CancelShipment struct {
	OrderID string
	// Requested is set for the customer's cancellation request, which the
	// contract promises only for an order with a shipment; unset for an
	// order already cancelled, which may never have had one.
	Requested bool
}

// CancelShipment cancels the order's shipment if the carrier has not picked
// it up, so that it is never dispatched, and publishes
// shipping.shipment_cancelled.v1. A shipment already dispatched, delivered,
// failed or cancelled is left alone and nothing is published: the order
// follows the shipment events already sent. Shipping alone serialises
// dispatch (the carrier's step locks the same row), so the race between a
// cancellation and the pickup has exactly one winner.
func (s *Service) CancelShipment(ctx context.Context, cmd CancelShipment) (CancelOutcome, error) {
	outcome := CancelNoShipment
	err := s.shipments.Update(ctx, cmd.OrderID, func(sh *domain.Shipment) (*domain.Shipment, []outbox.Event, error) {
		if sh == nil {
			if cmd.Requested {
				return nil, nil, ErrNoShipmentYet
			}
			return nil, nil, nil
		}
		now := s.now()
		switch err := sh.Cancel(now); {
		case errors.Is(err, domain.ErrAlreadyCancelled):
			outcome = CancelAlready
			return nil, nil, nil
		case errors.Is(err, domain.ErrAlreadyDispatched):
			outcome = CancelTooLate
			return nil, nil, nil
		case err != nil:
			return nil, nil, err
		}
		outcome = CancelCancelled
		return sh, []outbox.Event{{
			Type: contracts.TypeShipmentCancelledV1, AggregateID: sh.OrderID(), OccurredAt: now,
			Payload: contracts.ShipmentCancelledV1{ShipmentID: sh.ID(), OrderID: sh.OrderID(), UserID: sh.UserID()},
		}}, nil
	})
	if err != nil {
		return "", err
	}
	return outcome, nil
}
