package app_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/cart/internal/app"
	"github.com/shopmesh/shopmesh/services/cart/internal/domain"
)

const (
	user  = "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f50"
	user2 = "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f51"
	cup   = "0190d6a2-0f11-7a22-8b33-4c44d55e66f7"
	grind = "0190d6a2-0f11-7a22-8b33-4c44d55e6708"
)

// fakeRepo keeps everything in maps and applies a change only when its
// function succeeds, as a transaction would.
type fakeRepo struct {
	products  map[string]domain.Product
	carts     map[string]domain.Cart
	checkouts map[[2]string]domain.Checkout
	published []outbox.Event
}

func newFakeRepo() *fakeRepo {
	return &fakeRepo{products: map[string]domain.Product{}, carts: map[string]domain.Cart{}, checkouts: map[[2]string]domain.Checkout{}}
}

func (f *fakeRepo) cart(userID string) domain.Cart {
	if c, ok := f.carts[userID]; ok {
		return c
	}
	c, _ := domain.NewCart(userID)
	return c
}

func (f *fakeRepo) Cart(_ context.Context, userID string) (domain.Cart, error) {
	return f.cart(userID), nil
}

func (f *fakeRepo) UpdateCart(_ context.Context, userID, productID string, fn app.CartUpdate) (domain.Cart, error) {
	c := f.cart(userID)
	var p *domain.Product
	if productID != "" {
		prod, ok := f.products[productID]
		if !ok {
			return domain.Cart{}, domain.ErrProductNotFound
		}
		p = &prod
	}
	events, err := fn(&c, p)
	if err != nil {
		return domain.Cart{}, err
	}
	f.carts[userID] = c
	f.published = append(f.published, events...)
	return c, nil
}

func (f *fakeRepo) Checkout(_ context.Context, userID, key string, fn app.CheckoutUpdate) (domain.Checkout, error) {
	c := f.cart(userID)
	var prior *domain.Checkout
	if co, ok := f.checkouts[[2]string{userID, key}]; ok {
		prior = &co
	}
	rec, events, err := fn(&c, prior)
	if err != nil {
		return domain.Checkout{}, err
	}
	if rec == nil {
		return *prior, nil
	}
	f.checkouts[[2]string{userID, key}] = *rec
	f.carts[userID] = c
	f.published = append(f.published, events...)
	return *rec, nil
}

func (f *fakeRepo) AddProduct(_ context.Context, p domain.Product) error {
	if _, ok := f.products[p.ID()]; !ok {
		f.products[p.ID()] = p
	}
	return nil
}

func (f *fakeRepo) UpdateProduct(_ context.Context, id string, fn app.ProductUpdate) error {
	p, ok := f.products[id]
	if !ok {
		return domain.ErrProductNotFound
	}
	refresh, err := fn(&p)
	if err != nil {
		return err
	}
	f.products[id] = p
	for u, c := range f.carts {
		lines := c.Lines()
		for i := range lines {
			if lines[i].ProductID == id && refresh.Price {
				lines[i].UnitPrice = p.Price()
			}
		}
		f.carts[u], _ = domain.CartFromDatabase(u, lines)
	}
	return nil
}

func (f *fakeRepo) PruneCheckouts(context.Context, time.Time) (int64, error) { return 0, nil }

func (f *fakeRepo) types() []string {
	var out []string
	for _, e := range f.published {
		out = append(out, e.Type)
	}
	return out
}

func setup(t *testing.T) (*fakeRepo, *app.Service) {
	t.Helper()
	repo := newFakeRepo()
	svc := app.New(repo)
	ctx := context.Background()
	t0 := time.Now()
	if err := svc.AddProduct(ctx, cup, "CUP", "Cup", domain.Money{AmountMinor: 1250, Currency: "EUR"}, t0); err != nil {
		t.Fatal(err)
	}
	if err := svc.AddProduct(ctx, grind, "GRD", "Grinder", domain.Money{AmountMinor: 4990, Currency: "EUR"}, t0); err != nil {
		t.Fatal(err)
	}
	return repo, svc
}

func request(t *testing.T, token string) domain.CheckoutRequest {
	t.Helper()
	r, err := domain.NewCheckoutRequest(domain.Address{Name: "Ada", Line1: "Row 12", City: "London", PostalCode: "NW1", Country: "gb"}, token)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLinesPublishWhatChanged(t *testing.T) {
	repo, svc := setup(t)
	ctx := context.Background()
	if _, err := svc.SetQuantity(ctx, user, cup, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetQuantity(ctx, user, cup, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetQuantity(ctx, user, cup, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RemoveLine(ctx, user, cup); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RemoveLine(ctx, user, cup); err != nil {
		t.Fatalf("removing a missing line: %v", err)
	}
	want := []string{contracts.TypeCartLineUpdatedV1, contracts.TypeCartLineUpdatedV1, contracts.TypeCartLineRemovedV1}
	if got := repo.types(); !slices.Equal(got, want) {
		t.Errorf("published %v, want %v", got, want)
	}
	updated := repo.published[1].Payload.(contracts.CartLineUpdatedV1)
	if updated.PreviousQuantity != 2 || updated.Quantity != 5 || updated.UnitPrice.AmountMinor != 1250 || updated.SKU != "CUP" {
		t.Errorf("line updated %+v", updated)
	}
	if _, err := svc.SetQuantity(ctx, user, "0190d6a2-0f11-7a22-8b33-4c44d55e6799", 1); !errors.Is(err, domain.ErrProductNotFound) {
		t.Errorf("unknown product: %v", err)
	}
}

func TestPriceChangesRepriceOpenCartsInOrder(t *testing.T) {
	repo, svc := setup(t)
	ctx := context.Background()
	if _, err := svc.SetQuantity(ctx, user, cup, 2); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now().Add(time.Minute)
	if err := svc.RepriceProduct(ctx, cup, domain.Money{AmountMinor: 990, Currency: "EUR"}, t1); err != nil {
		t.Fatal(err)
	}
	if err := svc.RepriceProduct(ctx, cup, domain.Money{AmountMinor: 2000, Currency: "EUR"}, t1.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	c, _ := svc.Cart(ctx, user)
	if l, _ := c.Line(cup); l.UnitPrice.AmountMinor != 990 {
		t.Errorf("line price %d, want 990", l.UnitPrice.AmountMinor)
	}
	// A product added after the change is snapshot at the new price.
	if _, err := svc.SetQuantity(ctx, user2, cup, 1); err != nil {
		t.Fatal(err)
	}
	c2, _ := svc.Cart(ctx, user2)
	if l, _ := c2.Line(cup); l.UnitPrice.AmountMinor != 990 {
		t.Errorf("new line price %d, want 990", l.UnitPrice.AmountMinor)
	}
	if err := svc.RepriceProduct(ctx, "0190d6a2-0f11-7a22-8b33-4c44d55e6799", domain.Money{AmountMinor: 1, Currency: "EUR"}, t1); !errors.Is(err, domain.ErrProductNotFound) {
		t.Errorf("unknown product: %v", err)
	}
	if len(repo.published) != 2 {
		t.Errorf("repricing published events: %v", repo.types())
	}
}

func TestCheckoutIsIdempotentPerKey(t *testing.T) {
	repo, svc := setup(t)
	ctx := context.Background()
	if _, err := svc.Checkout(ctx, user, "k1", request(t, "tok_ok")); !errors.Is(err, domain.ErrEmptyCart) {
		t.Fatalf("empty cart: %v", err)
	}
	if _, err := svc.SetQuantity(ctx, user, cup, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetQuantity(ctx, user, grind, 1); err != nil {
		t.Fatal(err)
	}
	repo.published = nil
	first, err := svc.Checkout(ctx, user, "k1", request(t, "tok_ok"))
	if err != nil {
		t.Fatal(err)
	}
	if got := repo.types(); !slices.Equal(got, []string{contracts.TypeCartCheckedOutV1}) {
		t.Fatalf("published %v", got)
	}
	e := repo.published[0].Payload.(contracts.CartCheckedOutV1)
	if e.OrderID != first.OrderID || e.UserID != user || e.IdempotencyKey != "k1" || e.PaymentToken != "tok_ok" ||
		e.Total != (contracts.Money{AmountMinor: 2*1250 + 4990, Currency: "EUR"}) || len(e.Lines) != 2 || e.ShippingAddress.Country != "GB" {
		t.Errorf("checked out %+v", e)
	}
	if c, _ := svc.Cart(ctx, user); !c.Empty() {
		t.Errorf("cart not emptied")
	}

	again, err := svc.Checkout(ctx, user, "k1", request(t, "tok_ok"))
	if err != nil || again.OrderID != first.OrderID {
		t.Errorf("retry: %+v %v, want order %s", again, err, first.OrderID)
	}
	if _, err := svc.Checkout(ctx, user, "k1", request(t, "tok_decline")); !errors.Is(err, domain.ErrKeyReused) {
		t.Errorf("same key, other request: %v", err)
	}
	if _, err := svc.Checkout(ctx, user, "k2", request(t, "tok_ok")); !errors.Is(err, domain.ErrEmptyCart) {
		t.Errorf("new key on the emptied cart: %v", err)
	}
	// Keys are per user.
	if _, err := svc.Checkout(ctx, user2, "k1", request(t, "tok_ok")); !errors.Is(err, domain.ErrEmptyCart) {
		t.Errorf("another user's key: %v", err)
	}
	if len(repo.published) != 1 {
		t.Errorf("retries published %v", repo.types()[1:])
	}
}
