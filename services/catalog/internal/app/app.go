// Package app holds the catalogue's use cases: administrators create and
// change products, customers browse and search them, and inventory's stock
// reports keep their availability. Each change runs in one repository
// transaction with the events it publishes. It must not know HTTP, AMQP or
// SQL.
package app

import (
	"context"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/catalog/internal/domain"
)

// ProductUpdate changes a loaded product in place and returns the events to
// publish with the change; an error stores nothing.
type ProductUpdate func(p *domain.Product) ([]outbox.Event, error)

// Query selects a page of products.
type Query struct {
	// Search matches name, sku and description, case-insensitively; "" matches all.
	Search string
	Limit  int
	Offset int
}

// Page is one page of a query's products, ordered by name.
type Page struct {
	Products []domain.Product
	// Total counts every product the query matches.
	Total int
}

// Repository stores products. Changes run in one transaction that also
// writes their events to the outbox.
type Repository interface {
	// Create stores a new product, or returns domain.ErrSKUTaken.
	Create(ctx context.Context, p domain.Product, events []outbox.Event) error
	// Update loads and locks a product, applies fn and stores the result,
	// or returns domain.ErrNotFound.
	Update(ctx context.Context, id string, fn ProductUpdate) (domain.Product, error)
	// Product returns one product, or domain.ErrNotFound.
	Product(ctx context.Context, id string) (domain.Product, error)
	// Products returns a page of products.
	Products(ctx context.Context, q Query) (Page, error)
}

// Service runs the catalogue's use cases against one repository: the
// service's database, or the transaction of a consumed message.
type Service struct {
	repo  Repository
	newID func() string
}

// New returns the use cases over repo.
func New(repo Repository) *Service {
	return &Service{repo: repo, newID: outbox.NewID}
}
