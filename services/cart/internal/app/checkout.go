package app

import (
	"context"
	"fmt"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/cart/internal/domain"
)

// Checkout turns a user's cart into an order, in one transaction: it chooses
// the order id, records the request under the idempotency key, empties the
// cart and publishes cart.checked_out.v1, from which the order service places
// the order with that id. The same key with the same request answers with the
// recorded order and publishes nothing; with another request it is
// domain.ErrKeyReused. An empty cart is domain.ErrEmptyCart.
func (s *Service) Checkout(ctx context.Context, userID, key string, req domain.CheckoutRequest) (domain.Checkout, error) {
	hash := req.Hash()
	co, err := s.repo.Checkout(ctx, userID, key, func(c *domain.Cart, prior *domain.Checkout) (*domain.Checkout, []outbox.Event, error) {
		if prior != nil {
			_, err := prior.Replay(hash)
			return nil, nil, err
		}
		co, err := c.Checkout(key, req, s.newID(), s.now())
		if err != nil {
			return nil, nil, err
		}
		lines := make([]contracts.Line, len(co.Lines))
		for i, l := range co.Lines {
			lines[i] = contracts.Line{ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity,
				UnitPrice: contracts.Money{AmountMinor: l.UnitPrice.AmountMinor, Currency: l.UnitPrice.Currency}}
		}
		a := req.Address
		return &co, []outbox.Event{{
			Type:        contracts.TypeCartCheckedOutV1,
			AggregateID: co.UserID,
			Payload: contracts.CartCheckedOutV1{
				OrderID: co.OrderID, UserID: co.UserID, Lines: lines,
				Total: contracts.Money{AmountMinor: co.Total.AmountMinor, Currency: co.Total.Currency},
				ShippingAddress: contracts.Address{Name: a.Name, Line1: a.Line1, Line2: a.Line2, City: a.City,
					PostalCode: a.PostalCode, Country: a.Country},
				PaymentToken: req.PaymentToken, IdempotencyKey: key,
			},
		}}, nil
	})
	if err != nil {
		return domain.Checkout{}, fmt.Errorf("checkout of %s: %w", userID, err)
	}
	return co, nil
}

// PruneCheckouts forgets the idempotency records older than retention; a
// checkout retried after that places a new order.
func (s *Service) PruneCheckouts(ctx context.Context, retention time.Duration) (int64, error) {
	n, err := s.repo.PruneCheckouts(ctx, s.now().Add(-retention))
	if err != nil {
		return 0, fmt.Errorf("prune checkouts: %w", err)
	}
	return n, nil
}
