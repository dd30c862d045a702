package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/cart/internal/domain"
)

// RemoveLine takes a product out of a user's cart and publishes
// cart.line_removed.v1. Removing a product the cart does not hold changes
// nothing: the request's goal is met.
func (s *Service) RemoveLine(ctx context.Context, userID, productID string) (domain.Cart, error) {
	c, err := s.repo.UpdateCart(ctx, userID, "", func(c *domain.Cart, _ *domain.Product) ([]outbox.Event, error) {
		previous, err := c.Remove(productID)
		if errors.Is(err, domain.ErrLineNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []outbox.Event{{
			Type:        contracts.TypeCartLineRemovedV1,
			AggregateID: c.UserID(),
			Payload:     contracts.CartLineRemovedV1{UserID: c.UserID(), ProductID: productID, PreviousQuantity: previous},
		}}, nil
	})
	if err != nil {
		return domain.Cart{}, fmt.Errorf("remove %s from the cart of %s: %w", productID, userID, err)
	}
	return c, nil
}
