package app

import (
	"context"
	"fmt"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/catalog/internal/domain"
)

// UpdateProduct applies an administrator's change. A change of name or
// description publishes catalog.product_updated.v1 (the descriptive fields
// after the change); a change of price publishes catalog.price_changed.v1
// (carts reprice their lines from it). A patch that changes nothing
// publishes nothing.
func (s *Service) UpdateProduct(ctx context.Context, id string, patch domain.Patch) (domain.Product, error) {
	p, err := s.repo.Update(ctx, id, func(p *domain.Product) ([]outbox.Event, error) {
		ch, err := p.Update(patch)
		if err != nil {
			return nil, err
		}
		var events []outbox.Event
		if ch.Details {
			events = append(events, outbox.Event{
				Type:        contracts.TypeProductUpdatedV1,
				AggregateID: p.ID(),
				Payload: contracts.ProductUpdatedV1{
					ProductID: p.ID(), SKU: p.SKU(), Name: p.Name(), Description: p.Description(),
				},
			})
		}
		if ch.Price {
			events = append(events, outbox.Event{
				Type:        contracts.TypePriceChangedV1,
				AggregateID: p.ID(),
				Payload: contracts.PriceChangedV1{
					ProductID: p.ID(), SKU: p.SKU(), PreviousPrice: money(ch.PreviousPrice), Price: money(p.Price()),
				},
			})
		}
		return events, nil
	})
	if err != nil {
		return domain.Product{}, fmt.Errorf("update product %s: %w", id, err)
	}
	return p, nil
}
