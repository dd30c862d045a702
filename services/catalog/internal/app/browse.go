package app

import (
	"context"
	"fmt"

	"github.com/shopmesh/shopmesh/services/catalog/internal/domain"
)

// Paging limits.
const (
	DefaultLimit = 20
	MaxLimit     = 100
	// MaxOffset keeps deep paging from turning into full scans.
	MaxOffset = 100_000
	// MaxSearchLength bounds the search text, in characters.
	MaxSearchLength = 200
)

// Product returns one product.
func (s *Service) Product(ctx context.Context, id string) (domain.Product, error) {
	p, err := s.repo.Product(ctx, id)
	if err != nil {
		return domain.Product{}, fmt.Errorf("product %s: %w", id, err)
	}
	return p, nil
}

// Products returns a page of the catalogue, searched and ordered by name.
// The query's limits are checked by the caller (see DefaultLimit..).
func (s *Service) Products(ctx context.Context, q Query) (Page, error) {
	page, err := s.repo.Products(ctx, q)
	if err != nil {
		return Page{}, fmt.Errorf("list products: %w", err)
	}
	return page, nil
}
