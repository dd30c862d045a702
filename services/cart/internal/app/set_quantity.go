package app

import (
	"context"
	"fmt"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/cart/internal/domain"
)

// SetQuantity puts quantity units of a product in a user's cart at the
// product's current price and publishes cart.line_updated.v1 when the
// quantity changed.
func (s *Service) SetQuantity(ctx context.Context, userID, productID string, quantity int) (domain.Cart, error) {
	c, err := s.repo.UpdateCart(ctx, userID, productID, func(c *domain.Cart, p *domain.Product) ([]outbox.Event, error) {
		previous, err := c.Set(*p, quantity, s.now())
		if err != nil || previous == quantity {
			return nil, err
		}
		return []outbox.Event{{
			Type:        contracts.TypeCartLineUpdatedV1,
			AggregateID: c.UserID(),
			Payload: contracts.CartLineUpdatedV1{
				UserID: c.UserID(), ProductID: p.ID(), SKU: p.SKU(), Quantity: quantity, PreviousQuantity: previous,
				UnitPrice: contracts.Money{AmountMinor: p.Price().AmountMinor, Currency: p.Price().Currency},
			},
		}}, nil
	})
	if err != nil {
		return domain.Cart{}, fmt.Errorf("set %s in the cart of %s: %w", productID, userID, err)
	}
	return c, nil
}
