package app

import (
	"context"
	"fmt"
	"time"

	"github.com/shopmesh/shopmesh/services/cart/internal/domain"
)

// AddProduct records a product the catalogue created at asOf. A product
// already known keeps its view: a replayed creation never undoes later
// changes.
func (s *Service) AddProduct(ctx context.Context, id, sku, name string, price domain.Money, asOf time.Time) error {
	p, err := domain.NewProduct(id, sku, name, price, asOf)
	if err != nil {
		return fmt.Errorf("add product %s: %w", id, err)
	}
	if err := s.repo.AddProduct(ctx, p); err != nil {
		return fmt.Errorf("add product %s: %w", id, err)
	}
	return nil
}

// DescribeProduct applies the catalogue's change of a product's sku and
// name at asOf, to the view and to the lines of open carts.
func (s *Service) DescribeProduct(ctx context.Context, id, sku, name string, asOf time.Time) error {
	err := s.repo.UpdateProduct(ctx, id, func(p *domain.Product) (LineRefresh, error) {
		applied, err := p.Describe(sku, name, asOf)
		return LineRefresh{Details: applied}, err
	})
	if err != nil {
		return fmt.Errorf("describe product %s: %w", id, err)
	}
	return nil
}

// RepriceProduct applies the catalogue's price change at asOf to the view
// and to the price snapshot of every open cart's line of the product.
// Orders already placed keep their own snapshot.
func (s *Service) RepriceProduct(ctx context.Context, id string, price domain.Money, asOf time.Time) error {
	err := s.repo.UpdateProduct(ctx, id, func(p *domain.Product) (LineRefresh, error) {
		applied, err := p.Reprice(price, asOf)
		return LineRefresh{Price: applied}, err
	})
	if err != nil {
		return fmt.Errorf("reprice product %s: %w", id, err)
	}
	return nil
}
