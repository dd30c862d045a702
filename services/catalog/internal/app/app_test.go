package app_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/catalog/internal/app"
	"github.com/shopmesh/shopmesh/services/catalog/internal/domain"
)

// fakeRepo keeps products in a map and applies a change only when its
// function succeeds, as a transaction would.
type fakeRepo struct {
	products  map[string]domain.Product
	published []outbox.Event
}

func (f *fakeRepo) Create(_ context.Context, p domain.Product, events []outbox.Event) error {
	for _, q := range f.products {
		if q.SKU() == p.SKU() {
			return domain.ErrSKUTaken
		}
	}
	f.products[p.ID()] = p
	f.published = append(f.published, events...)
	return nil
}

func (f *fakeRepo) Update(_ context.Context, id string, fn app.ProductUpdate) (domain.Product, error) {
	p, ok := f.products[id]
	if !ok {
		return domain.Product{}, domain.ErrNotFound
	}
	events, err := fn(&p)
	if err != nil {
		return domain.Product{}, err
	}
	f.products[id] = p
	f.published = append(f.published, events...)
	return p, nil
}

func (f *fakeRepo) Product(_ context.Context, id string) (domain.Product, error) {
	p, ok := f.products[id]
	if !ok {
		return domain.Product{}, domain.ErrNotFound
	}
	return p, nil
}

func (f *fakeRepo) Products(context.Context, app.Query) (app.Page, error) {
	return app.Page{}, errors.New("not used")
}

func (f *fakeRepo) types() []string {
	var out []string
	for _, e := range f.published {
		out = append(out, e.Type)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func TestCreateProductPublishesItsInitialStock(t *testing.T) {
	repo := &fakeRepo{products: map[string]domain.Product{}}
	svc := app.New(repo)
	ctx := context.Background()
	p, err := svc.CreateProduct(ctx, app.NewProduct{SKU: "CUP-ESP-01", Name: "Espresso cup", PriceMinor: 1250, InitialStock: 40})
	if err != nil {
		t.Fatal(err)
	}
	if got := repo.types(); !slices.Equal(got, []string{contracts.TypeProductCreatedV1}) {
		t.Fatalf("published %v", got)
	}
	e := repo.published[0]
	created := e.Payload.(contracts.ProductCreatedV1)
	if e.AggregateID != p.ID() || created.ProductID != p.ID() || created.InitialStock != 40 ||
		created.Price != (contracts.Money{AmountMinor: 1250, Currency: "EUR"}) {
		t.Errorf("event %+v %+v", e, created)
	}
	if !p.Available() {
		t.Errorf("a product created with stock is not available")
	}
	if _, err := svc.CreateProduct(ctx, app.NewProduct{SKU: "CUP-ESP-01", Name: "Other", PriceMinor: 1}); !errors.Is(err, domain.ErrSKUTaken) {
		t.Errorf("duplicate sku: %v", err)
	}
	if _, err := svc.CreateProduct(ctx, app.NewProduct{SKU: "x", Name: "", PriceMinor: 0}); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("invalid product: %v", err)
	}
	if len(repo.published) != 1 {
		t.Errorf("refused creations published %v", repo.types()[1:])
	}
}

func TestUpdateProductPublishesWhatChanged(t *testing.T) {
	repo := &fakeRepo{products: map[string]domain.Product{}}
	svc := app.New(repo)
	ctx := context.Background()
	p, err := svc.CreateProduct(ctx, app.NewProduct{SKU: "CUP", Name: "Cup", PriceMinor: 1250})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		patch domain.Patch
		want  []string
	}{
		{"price", domain.Patch{PriceMinor: ptr[int64](990)}, []string{contracts.TypePriceChangedV1}},
		{"name", domain.Patch{Name: ptr("Big cup")}, []string{contracts.TypeProductUpdatedV1}},
		{"both", domain.Patch{Description: ptr("Tall."), PriceMinor: ptr[int64](1100), Currency: ptr("USD")},
			[]string{contracts.TypeProductUpdatedV1, contracts.TypePriceChangedV1}},
		{"nothing", domain.Patch{Name: ptr("Big cup"), PriceMinor: ptr[int64](1100)}, nil},
	}
	for _, tt := range tests {
		repo.published = nil
		if _, err := svc.UpdateProduct(ctx, p.ID(), tt.patch); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := repo.types(); !slices.Equal(got, tt.want) {
			t.Errorf("%s: published %v, want %v", tt.name, got, tt.want)
		}
	}
	repo.published = nil
	if _, err := svc.UpdateProduct(ctx, p.ID(), domain.Patch{PriceMinor: ptr[int64](1200), Currency: ptr("EUR")}); err != nil {
		t.Fatal(err)
	}
	changed := repo.published[0].Payload.(contracts.PriceChangedV1)
	if changed.PreviousPrice != (contracts.Money{AmountMinor: 1100, Currency: "USD"}) || changed.Price != (contracts.Money{AmountMinor: 1200, Currency: "EUR"}) {
		t.Errorf("price change %+v", changed)
	}
	if _, err := svc.UpdateProduct(ctx, "0190d6a2-0f11-7a22-8b33-4c44d55e6700", domain.Patch{Name: ptr("X")}); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("unknown product: %v", err)
	}
	if _, err := svc.UpdateProduct(ctx, p.ID(), domain.Patch{Name: ptr(strings.Repeat("n", 201))}); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("long name: %v", err)
	}
}

func TestStockLevelsKeepAvailability(t *testing.T) {
	repo := &fakeRepo{products: map[string]domain.Product{}}
	svc := app.New(repo)
	ctx := context.Background()
	p, err := svc.CreateProduct(ctx, app.NewProduct{SKU: "CUP", Name: "Cup", PriceMinor: 1250, InitialStock: 1})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := svc.ApplyStockLevel(ctx, p.ID(), 0, t0); err != nil {
		t.Fatal(err)
	}
	if got, _ := svc.Product(ctx, p.ID()); got.Available() {
		t.Errorf("available after stock ran out")
	}
	if err := svc.ApplyStockLevel(ctx, p.ID(), 5, t0.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := svc.Product(ctx, p.ID()); got.Available() {
		t.Errorf("an older report made the product available again")
	}
	if err := svc.ApplyStockLevel(ctx, "0190d6a2-0f11-7a22-8b33-4c44d55e6700", 5, t0); err != nil {
		t.Errorf("report about an unknown product: %v", err)
	}
}
