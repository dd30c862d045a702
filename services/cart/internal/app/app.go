// Package app holds the cart's use cases: customers fill and empty their
// carts and check out; the catalogue's events keep the cart's view of
// products and prices, and reprice open carts. Each change runs in one
// repository transaction with the events it publishes. It must not know
// HTTP, AMQP or SQL.
package app

import (
	"context"
	"time"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/cart/internal/domain"
)

// CartUpdate changes a loaded cart in place, given the product the change
// is about (nil when it names none), and returns the events to publish.
type CartUpdate func(c *domain.Cart, p *domain.Product) ([]outbox.Event, error)

// CheckoutUpdate decides a checkout, given the user's locked cart and the
// checkout recorded under the same idempotency key (nil when there is
// none). It returns the checkout to record (nil records nothing and answers
// with the recorded one) and the events to publish; the cart is stored as fn
// leaves it.
type CheckoutUpdate func(c *domain.Cart, prior *domain.Checkout) (*domain.Checkout, []outbox.Event, error)

// LineRefresh says which parts of a changed product the lines of open carts
// copy: their price snapshot, their sku and name.
type LineRefresh struct {
	Price   bool
	Details bool
}

// ProductUpdate changes a loaded product view in place and says what open
// carts' lines must copy from it.
type ProductUpdate func(p *domain.Product) (LineRefresh, error)

// Repository stores carts, checkouts and the view of products. Changes run
// in one transaction that also writes their events to the outbox; a user's
// cart is locked for the whole of a change, so one user's requests apply one
// after the other.
type Repository interface {
	// Cart returns a user's cart, empty when there is none.
	Cart(ctx context.Context, userID string) (domain.Cart, error)
	// UpdateCart locks the user's cart and, when productID is not empty,
	// reads the product's view under a share lock (a concurrent price change
	// waits, so a new line never misses it) or returns
	// domain.ErrProductNotFound; then it applies fn and stores the cart.
	UpdateCart(ctx context.Context, userID, productID string, fn CartUpdate) (domain.Cart, error)
	// Checkout locks the user's cart, loads the checkout recorded under key
	// and applies fn; it returns the checkout recorded now or before.
	Checkout(ctx context.Context, userID, key string, fn CheckoutUpdate) (domain.Checkout, error)
	// AddProduct stores a product's view unless one exists.
	AddProduct(ctx context.Context, p domain.Product) error
	// UpdateProduct locks a product's view, applies fn, stores it and copies
	// what fn says to the lines of every open cart holding the product. A
	// product not held is domain.ErrProductNotFound.
	UpdateProduct(ctx context.Context, id string, fn ProductUpdate) error
	// PruneCheckouts forgets checkouts recorded before a time and returns
	// how many.
	PruneCheckouts(ctx context.Context, before time.Time) (int64, error)
}

// Service runs the cart's use cases against one repository: the service's
// database, or the transaction of a consumed message.
type Service struct {
	repo  Repository
	newID func() string
	now   func() time.Time
}

// New returns the use cases over repo.
func New(repo Repository) *Service {
	return &Service{repo: repo, newID: outbox.NewID, now: time.Now}
}
