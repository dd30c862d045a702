package app

import (
	"context"
	"fmt"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/catalog/internal/domain"
)

// NewProduct is what an administrator gives to create a product.
type NewProduct struct {
	SKU          string
	Name         string
	Description  string
	PriceMinor   int64
	Currency     string // "" means EUR
	InitialStock int
}

// CreateProduct adds a product to the catalogue and publishes
// catalog.product_created.v1, from which inventory creates its stock with
// InitialStock units. Until inventory reports otherwise, the product counts
// InitialStock units as available.
func (s *Service) CreateProduct(ctx context.Context, in NewProduct) (domain.Product, error) {
	p, err := domain.NewProduct(s.newID(), in.SKU, in.Name, in.Description, in.PriceMinor, in.Currency, in.InitialStock)
	if err != nil {
		return domain.Product{}, err
	}
	created := outbox.Event{
		Type:        contracts.TypeProductCreatedV1,
		AggregateID: p.ID(),
		Payload: contracts.ProductCreatedV1{
			ProductID: p.ID(), SKU: p.SKU(), Name: p.Name(), Description: p.Description(),
			Price: money(p.Price()), InitialStock: in.InitialStock,
		},
	}
	if err := s.repo.Create(ctx, p, []outbox.Event{created}); err != nil {
		return domain.Product{}, fmt.Errorf("create product %s: %w", in.SKU, err)
	}
	return p, nil
}

func money(m domain.Money) contracts.Money {
	return contracts.Money{AmountMinor: m.AmountMinor(), Currency: m.Currency()}
}
