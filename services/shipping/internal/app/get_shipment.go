package app

import (
	"context"
	"fmt"

	"github.com/shopmesh/shopmesh/services/shipping/internal/domain"
)

// Shipment returns the shipment of an order to its owner. Another
// customer's shipment is reported as domain.ErrNotFound.
func (s *Service) Shipment(ctx context.Context, userID, orderID string) (*domain.Shipment, error) {
	sh, err := s.shipments.Shipment(ctx, orderID)
	if err != nil {
		return nil, fmt.Errorf("shipment of order %s: %w", orderID, err)
	}
	if sh.UserID() != userID {
		return nil, fmt.Errorf("shipment of order %s: %w", orderID, domain.ErrNotFound)
	}
	return sh, nil
}
