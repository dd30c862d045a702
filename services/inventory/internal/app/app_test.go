package app_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/inventory/internal/app"
	"github.com/shopmesh/shopmesh/services/inventory/internal/domain"
)

const (
	cup     = "0190d6a2-0f11-7a22-8b33-4c44d55e66f7"
	grinder = "0190d6a2-0f11-7a22-8b33-4c44d55e6708"
	order1  = "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90"
)

// fakeRepo keeps stock and reservations in maps and applies an update only
// when its function succeeds, as a transaction would.
type fakeRepo struct {
	stock        map[string]domain.Stock
	reservations map[string]domain.Reservation
	published    []outbox.Event
}

func newFakeRepo() *fakeRepo {
	return &fakeRepo{stock: map[string]domain.Stock{}, reservations: map[string]domain.Reservation{}}
}

func (f *fakeRepo) Stock(_ context.Context, id string) (domain.Stock, error) {
	s, ok := f.stock[id]
	if !ok {
		return domain.Stock{}, domain.ErrNotFound
	}
	return s, nil
}

func (f *fakeRepo) UpdateStock(_ context.Context, id string, fn app.StockUpdate) error {
	var cur *domain.Stock
	if s, ok := f.stock[id]; ok {
		cur = &s
	}
	next, events, err := fn(cur)
	if err != nil {
		return err
	}
	if next != nil {
		f.stock[id] = *next
	}
	f.published = append(f.published, events...)
	return nil
}

func (f *fakeRepo) UpdateReservation(_ context.Context, orderID string, ids []string, fn app.ReservationUpdate) error {
	var cur *domain.Reservation
	if r, ok := f.reservations[orderID]; ok {
		cur = &r
		for _, l := range r.Lines() {
			ids = append(ids, l.ProductID)
		}
	}
	stock := domain.Stocks{}
	for _, id := range ids {
		if s, ok := f.stock[id]; ok {
			stock[id] = &s
		}
	}
	next, events, err := fn(cur, stock)
	if err != nil {
		return err
	}
	if next != nil {
		f.reservations[orderID] = *next
	}
	for id, s := range stock {
		f.stock[id] = *s
	}
	f.published = append(f.published, events...)
	return nil
}

func (f *fakeRepo) types() []string {
	var out []string
	for _, e := range f.published {
		out = append(out, e.Type)
	}
	return out
}

func (f *fakeRepo) levels(t *testing.T, id string) domain.Levels {
	t.Helper()
	s, ok := f.stock[id]
	if !ok {
		t.Fatalf("no stock for %s", id)
	}
	return s.Levels()
}

func newService(repo *fakeRepo, policy app.Policy) *app.Service {
	return app.New(repo, policy)
}

func TestCreateStockOnce(t *testing.T) {
	repo := newFakeRepo()
	svc := newService(repo, app.Policy{LowStockThreshold: 5})
	ctx := context.Background()
	if err := svc.CreateStock(ctx, cup, "CUP", 40); err != nil {
		t.Fatal(err)
	}
	if err := svc.CreateStock(ctx, cup, "CUP", 99); err != nil {
		t.Fatal(err)
	}
	if got, want := repo.levels(t, cup), (domain.Levels{OnHand: 40, Available: 40}); got != want {
		t.Errorf("levels %+v, want %+v", got, want)
	}
	want := []string{contracts.TypeStockAdjustedV1, contracts.TypeStockLevelChangedV1}
	if got := repo.types(); !slices.Equal(got, want) {
		t.Errorf("published %v, want %v", got, want)
	}
	adjusted := repo.published[0].Payload.(contracts.StockAdjustedV1)
	if adjusted.Reason != contracts.AdjustInitial || adjusted.Delta != 40 || adjusted.Available != 40 {
		t.Errorf("adjusted %+v", adjusted)
	}

	// A product created with little stock is low from the start.
	if err := svc.CreateStock(ctx, grinder, "GRD", 0); err != nil {
		t.Fatal(err)
	}
	if got := repo.types()[2:]; !slices.Equal(got, []string{contracts.TypeStockAdjustedV1, contracts.TypeStockLevelChangedV1, contracts.TypeLowStockV1}) {
		t.Errorf("published %v for an empty product", got)
	}
	if err := svc.CreateStock(ctx, "bad", "X", 1); !errors.Is(err, app.ErrInvalidEvent) && !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("bad id: %v", err)
	}
}

func TestReserveOrderOnceAndAllOrNothing(t *testing.T) {
	repo := newFakeRepo()
	svc := newService(repo, app.Policy{LowStockThreshold: 2})
	ctx := context.Background()
	for id, n := range map[string]int{cup: 5, grinder: 1} {
		if err := svc.CreateStock(ctx, id, "SKU", n); err != nil {
			t.Fatal(err)
		}
	}
	repo.published = nil

	if err := svc.ReserveOrder(ctx, order1, []domain.Line{{ProductID: cup, Quantity: 3}, {ProductID: grinder, Quantity: 1}}); err != nil {
		t.Fatal(err)
	}
	want := []string{contracts.TypeStockReservedV1,
		contracts.TypeStockLevelChangedV1, contracts.TypeLowStockV1, // cup: 5 -> 2
		contracts.TypeStockLevelChangedV1} // grinder: 1 -> 0, already low
	if got := repo.types(); !slices.Equal(got, want) {
		t.Errorf("published %v, want %v", got, want)
	}
	// The same order placed again (another message id) reserves nothing.
	if err := svc.ReserveOrder(ctx, order1, []domain.Line{{ProductID: cup, Quantity: 1}}); err != nil {
		t.Fatal(err)
	}
	if len(repo.published) != len(want) {
		t.Errorf("second placement published %v", repo.types()[len(want):])
	}
	if got := repo.levels(t, cup); got.Reserved != 3 {
		t.Errorf("cup reserved %d, want 3", got.Reserved)
	}

	// A second order that cannot be covered reserves nothing at all.
	repo.published = nil
	order2 := "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c91"
	if err := svc.ReserveOrder(ctx, order2, []domain.Line{{ProductID: cup, Quantity: 2}, {ProductID: grinder, Quantity: 1}}); err != nil {
		t.Fatal(err)
	}
	if got := repo.types(); !slices.Equal(got, []string{contracts.TypeStockReservationFailedV1}) {
		t.Fatalf("published %v", got)
	}
	failed := repo.published[0].Payload.(contracts.StockReservationFailedV1)
	if len(failed.Shortages) != 1 || failed.Shortages[0] != (contracts.Shortage{ProductID: grinder, Requested: 1, Available: 0}) {
		t.Errorf("shortages %+v", failed.Shortages)
	}
	if got := repo.levels(t, cup); got.Reserved != 3 {
		t.Errorf("a failed reservation changed cup to %+v", got)
	}
}

func TestConfirmAndCancelCompensateOnce(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) (*fakeRepo, *app.Service) {
		repo := newFakeRepo()
		svc := newService(repo, app.Policy{LowStockThreshold: -1})
		if err := svc.CreateStock(ctx, cup, "CUP", 10); err != nil {
			t.Fatal(err)
		}
		if err := svc.ReserveOrder(ctx, order1, []domain.Line{{ProductID: cup, Quantity: 4}}); err != nil {
			t.Fatal(err)
		}
		repo.published = nil
		return repo, svc
	}
	t.Run("cancel while held releases", func(t *testing.T) {
		repo, svc := setup(t)
		for range 2 {
			if err := svc.CancelOrder(ctx, order1, []contracts.Compensation{contracts.CompensateReleaseStock}); err != nil {
				t.Fatal(err)
			}
		}
		if got := repo.types(); !slices.Equal(got, []string{contracts.TypeStockReleasedV1, contracts.TypeStockLevelChangedV1}) {
			t.Errorf("published %v", got)
		}
		if got, want := repo.levels(t, cup), (domain.Levels{OnHand: 10, Available: 10}); got != want {
			t.Errorf("levels %+v, want %+v", got, want)
		}
	})
	t.Run("confirm then cancel returns", func(t *testing.T) {
		repo, svc := setup(t)
		for range 2 {
			if err := svc.CommitOrder(ctx, order1); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := repo.levels(t, cup), (domain.Levels{OnHand: 6, Available: 6}); got != want {
			t.Errorf("after commit %+v, want %+v", got, want)
		}
		for range 2 {
			if err := svc.CancelOrder(ctx, order1, []contracts.Compensation{contracts.CompensateReturnStock, contracts.CompensateRefundPayment}); err != nil {
				t.Fatal(err)
			}
		}
		want := []string{contracts.TypeStockCommittedV1, contracts.TypeStockLevelChangedV1,
			contracts.TypeStockReturnedV1, contracts.TypeStockLevelChangedV1}
		if got := repo.types(); !slices.Equal(got, want) {
			t.Errorf("published %v, want %v", got, want)
		}
		if got, want := repo.levels(t, cup), (domain.Levels{OnHand: 10, Available: 10}); got != want {
			t.Errorf("after return %+v, want %+v", got, want)
		}
	})
	t.Run("cancel of an order never reserved does nothing", func(t *testing.T) {
		repo, svc := setup(t)
		other := "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c99"
		if err := svc.CancelOrder(ctx, other, []contracts.Compensation{contracts.CompensateReleaseStock}); err != nil {
			t.Fatal(err)
		}
		if err := svc.ReserveOrder(ctx, other, []domain.Line{{ProductID: cup, Quantity: 1}}); err != nil {
			t.Fatal(err)
		}
		if len(repo.published) != 0 {
			t.Errorf("published %v", repo.types())
		}
		if got := repo.levels(t, cup); got.Reserved != 4 {
			t.Errorf("reserved %d, want 4", got.Reserved)
		}
	})
	t.Run("confirm of an order never reserved is an error", func(t *testing.T) {
		_, svc := setup(t)
		err := svc.CommitOrder(ctx, "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c98")
		if !errors.Is(err, domain.ErrNotReserved) {
			t.Errorf("got %v, want ErrNotReserved", err)
		}
	})
}

func TestAdjustAndRestock(t *testing.T) {
	ctx := context.Background()
	repo := newFakeRepo()
	svc := newService(repo, app.Policy{LowStockThreshold: 5, AutoRestock: true, RestockQuantity: 20})
	if err := svc.CreateStock(ctx, cup, "CUP", 10); err != nil {
		t.Fatal(err)
	}
	repo.published = nil
	st, err := svc.AdjustStock(ctx, cup, -6)
	if err != nil {
		t.Fatal(err)
	}
	if st.OnHand() != 4 {
		t.Errorf("on hand %d, want 4", st.OnHand())
	}
	want := []string{contracts.TypeStockAdjustedV1, contracts.TypeStockLevelChangedV1, contracts.TypeLowStockV1}
	if got := repo.types(); !slices.Equal(got, want) {
		t.Errorf("published %v, want %v", got, want)
	}
	if _, err := svc.AdjustStock(ctx, cup, -5); !errors.Is(err, domain.ErrInsufficientStock) {
		t.Errorf("below zero: %v", err)
	}
	if _, err := svc.AdjustStock(ctx, grinder, 5); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("unknown product: %v", err)
	}

	repo.published = nil
	if err := svc.Restock(ctx, cup); err != nil {
		t.Fatal(err)
	}
	if got := repo.levels(t, cup); got.OnHand != 24 {
		t.Errorf("after restock on hand %d, want 24", got.OnHand)
	}
	adjusted := repo.published[0].Payload.(contracts.StockAdjustedV1)
	if adjusted.Reason != contracts.AdjustAutoRestock || adjusted.Delta != 20 {
		t.Errorf("restock event %+v", adjusted)
	}
	// Availability is above the threshold now: a second alert does nothing.
	if err := svc.Restock(ctx, cup); err != nil {
		t.Fatal(err)
	}
	if got := repo.levels(t, cup); got.OnHand != 24 {
		t.Errorf("second restock changed on hand to %d", got.OnHand)
	}

	off := newService(repo, app.Policy{LowStockThreshold: 50, RestockQuantity: 20})
	if err := off.Restock(ctx, cup); err != nil {
		t.Fatal(err)
	}
	if got := repo.levels(t, cup); got.OnHand != 24 {
		t.Errorf("restock with auto restock off changed on hand to %d", got.OnHand)
	}
}
