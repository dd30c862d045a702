package app

import (
	"context"
	"fmt"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/shipping/internal/domain"
)

// AdvanceDue takes the carrier's next step for up to limit due shipments:
// a created shipment is picked up (dispatched, with its delivery due after
// the delivery delay) or refused (failed, e.g. undeliverable); a dispatched
// one is delivered. Each step is stored with its event in one transaction.
// It returns how many shipments advanced.
func (s *Service) AdvanceDue(ctx context.Context, limit int) (int, error) {
	return s.due.UpdateDue(ctx, s.now(), limit, func(sh *domain.Shipment) (*domain.Shipment, []outbox.Event, error) {
		now := s.now()
		var (
			out CarrierOutcome
			err error
		)
		switch sh.Status() {
		case domain.StatusCreated:
			out, err = s.carrier.Pickup(ctx, sh)
		case domain.StatusDispatched:
			out, err = s.carrier.Deliver(ctx, sh)
		default:
			return nil, nil, fmt.Errorf("shipment %s is %s: %w", sh.ID(), sh.Status(), domain.ErrTransition)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("carrier step for shipment %s: %w", sh.ID(), err)
		}
		base := outbox.Event{AggregateID: sh.OrderID(), OccurredAt: now}
		switch {
		case out.FailureReason != "":
			if err := sh.Fail(out.FailureReason, out.FailureDetail, now); err != nil {
				return nil, nil, err
			}
			base.Type = contracts.TypeShipmentFailedV1
			base.Payload = contracts.ShipmentFailedV1{ShipmentID: sh.ID(), OrderID: sh.OrderID(), UserID: sh.UserID(),
				Reason: contracts.FailureReason(out.FailureReason), Detail: out.FailureDetail}
		case sh.Status() == domain.StatusCreated:
			if err := sh.Dispatch(out.Tracking, now, now.Add(s.timing.Delivery)); err != nil {
				return nil, nil, err
			}
			base.Type = contracts.TypeShipmentDispatchedV1
			base.Payload = contracts.ShipmentDispatchedV1{ShipmentID: sh.ID(), OrderID: sh.OrderID(), UserID: sh.UserID(),
				Carrier: sh.Carrier(), TrackingNumber: sh.Tracking()}
		default:
			if err := sh.Deliver(now); err != nil {
				return nil, nil, err
			}
			base.Type = contracts.TypeShipmentDeliveredV1
			base.Payload = contracts.ShipmentDeliveredV1{ShipmentID: sh.ID(), OrderID: sh.OrderID(), UserID: sh.UserID()}
		}
		return sh, []outbox.Event{base}, nil
	})
}
