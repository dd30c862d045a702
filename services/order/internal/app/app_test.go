package app_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/services/order/internal/app"
	"github.com/shopmesh/shopmesh/services/order/internal/domain"
)

// fakeOrders is an in-memory store with the store's contract: Update writes
// only when fn changed the order, Create keeps the first order of an id.
type fakeOrders struct {
	orders map[domain.OrderID]domain.Snapshot
	events []domain.Event
	writes int
}

func newFakeOrders() *fakeOrders { return &fakeOrders{orders: map[domain.OrderID]domain.Snapshot{}} }

func (f *fakeOrders) Create(_ context.Context, o *domain.Order, events []domain.Event) (bool, error) {
	if _, ok := f.orders[o.ID()]; ok {
		return false, nil
	}
	f.orders[o.ID()] = o.Snapshot()
	f.events = append(f.events, events...)
	f.writes++
	return true, nil
}

func (f *fakeOrders) Update(_ context.Context, id domain.OrderID, fn app.UpdateFunc) error {
	s, ok := f.orders[id]
	if !ok {
		return domain.ErrNotFound
	}
	o, err := domain.FromDatabase(s)
	if err != nil {
		return err
	}
	events, err := fn(o)
	if err != nil {
		return err
	}
	if o.Revision() != s.Revision {
		f.orders[id] = o.Snapshot()
		f.events = append(f.events, events...)
		f.writes++
	}
	return nil
}

func (f *fakeOrders) Get(_ context.Context, id domain.OrderID) (*domain.Order, error) {
	s, ok := f.orders[id]
	if !ok {
		return nil, domain.ErrNotFound
	}
	return domain.FromDatabase(s)
}

func (f *fakeOrders) Revision(_ context.Context, id domain.OrderID) (domain.UserID, int, error) {
	s, ok := f.orders[id]
	if !ok {
		return "", 0, domain.ErrNotFound
	}
	return s.UserID, s.Revision, nil
}

func (f *fakeOrders) ListByUser(_ context.Context, user domain.UserID, after *app.Cursor, limit int) ([]*domain.Order, error) {
	var all []*domain.Order
	for _, s := range f.orders {
		if s.UserID == user {
			o, _ := domain.FromDatabase(s)
			all = append(all, o)
		}
	}
	slices.SortFunc(all, func(a, b *domain.Order) int { return -a.PlacedAt().Compare(b.PlacedAt()) })
	if after != nil {
		i := slices.IndexFunc(all, func(o *domain.Order) bool { return o.PlacedAt().Before(after.PlacedAt) })
		if i < 0 {
			return nil, nil
		}
		all = all[i:]
	}
	return all[:min(limit, len(all))], nil
}

const (
	alice = domain.UserID("0190a1b2-0000-7000-8000-0000000000aa")
	bob   = domain.UserID("0190a1b2-0000-7000-8000-0000000000bb")
)

func placement(n int, user domain.UserID) domain.Placement {
	return domain.Placement{
		ID:     domain.OrderID(fmt.Sprintf("0190a1b2-0000-7000-8000-%012d", n)),
		UserID: user,
		Lines: []domain.Line{{ProductID: "0190a1b2-0000-7000-8000-0000000000f1", SKU: "A", Name: "Mug", Quantity: 1,
			UnitPrice: domain.Money{AmountMinor: 100, Currency: "EUR"}}},
		Total:           domain.Money{AmountMinor: 100, Currency: "EUR"},
		ShippingAddress: domain.Address{Name: "Ada", Line1: "1 Main St", City: "Berlin", PostalCode: "10115", Country: "DE"},
		PaymentToken:    "tok_ok",
	}
}

type fixture struct {
	orders  *fakeOrders
	saga    *app.Saga
	service *app.Service
	now     time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	machine, err := domain.NewSaga(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{orders: newFakeOrders(), now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	clock := func() time.Time { f.now = f.now.Add(time.Second); return f.now }
	f.saga = app.NewSaga(f.orders, machine, clock)
	f.service = app.NewService(f.orders, f.orders, machine, clock)
	return f
}

func TestPlaceIsIdempotentPerOrderID(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	for range 2 {
		if err := f.saga.Place(ctx, placement(1, alice)); err != nil {
			t.Fatal(err)
		}
	}
	if f.orders.writes != 1 || len(f.orders.events) != 1 {
		t.Errorf("writes %d, events %d: want one placement", f.orders.writes, len(f.orders.events))
	}
	bad := placement(2, alice)
	bad.Total.AmountMinor = 99
	if err := f.saga.Place(ctx, bad); !errors.Is(err, domain.ErrInvalidOrder) {
		t.Errorf("invalid checkout: err = %v, want ErrInvalidOrder", err)
	}
}

func TestApplyWritesOnlyWhatChanges(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	p := placement(1, alice)
	if err := f.saga.Place(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := f.saga.Apply(ctx, p.ID, domain.StockReserved{}); err != nil {
		t.Fatal(err)
	}
	writes := f.orders.writes
	if err := f.saga.Apply(ctx, p.ID, domain.StockReserved{}); err != nil {
		t.Fatal(err)
	}
	if f.orders.writes != writes {
		t.Errorf("a reply without effect was written")
	}
	if err := f.saga.Apply(ctx, placement(9, alice).ID, domain.StockReserved{}); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("reply for an unknown order: err = %v, want ErrNotFound", err)
	}
}

func TestCustomersSeeAndCancelOnlyTheirOwnOrders(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	p := placement(1, alice)
	if err := f.saga.Place(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := f.service.Get(ctx, bob, p.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("bob reads alice's order: err = %v", err)
	}
	if _, err := f.service.Revision(ctx, bob, p.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("bob reads the revision of alice's order: err = %v", err)
	}
	before, err := f.service.Revision(ctx, alice, p.ID)
	if err != nil || before < 1 {
		t.Fatalf("alice reads her order's revision: %d, %v", before, err)
	}
	writes := f.orders.writes
	if _, err := f.service.Cancel(ctx, bob, p.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("bob cancels alice's order: err = %v", err)
	}
	if f.orders.writes != writes {
		t.Errorf("bob's cancel was written")
	}
	o, err := f.service.Cancel(ctx, alice, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if o.Status() != domain.StatusCancelled || o.CancellationReason() != domain.ReasonCustomerRequest {
		t.Errorf("cancel returned %s (%s)", o.Status(), o.CancellationReason())
	}
	if after, err := f.service.Revision(ctx, alice, p.ID); err != nil || after <= before {
		t.Errorf("revision after the cancel: %d, %v; want above %d", after, err, before)
	}
}

func TestCancelAfterDispatchIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	p := placement(1, alice)
	_ = f.saga.Place(ctx, p)
	for _, r := range []domain.Reply{domain.StockReserved{}, domain.PaymentAuthorized{PaymentID: "0190a1b2-0000-7000-8000-0000000000c1",
		Amount: p.Total}, domain.ShipmentDispatched{ShipmentID: "0190a1b2-0000-7000-8000-0000000000d1", Carrier: "c", TrackingNumber: "t"}} {
		if err := f.saga.Apply(ctx, p.ID, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.service.Cancel(ctx, alice, p.ID); !errors.Is(err, domain.ErrAlreadyShipped) {
		t.Errorf("err = %v, want ErrAlreadyShipped", err)
	}
}

func TestListPagesNewestFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	for n := 1; n <= 5; n++ {
		if err := f.saga.Place(ctx, placement(n, alice)); err != nil {
			t.Fatal(err)
		}
	}
	_ = f.saga.Place(ctx, placement(6, bob))
	var got []domain.OrderID
	q := app.ListQuery{Limit: 2}
	for pages := 1; ; pages++ {
		res, err := f.service.List(ctx, alice, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range res.Orders {
			got = append(got, o.ID())
		}
		if res.Next == nil {
			if pages != 3 {
				t.Errorf("%d pages, want 3", pages)
			}
			break
		}
		q.After = res.Next
	}
	want := []domain.OrderID{placement(5, alice).ID, placement(4, alice).ID, placement(3, alice).ID, placement(2, alice).ID, placement(1, alice).ID}
	if !slices.Equal(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}
	for _, limit := range []int{-1, app.MaxPageSize + 1} {
		if _, err := f.service.List(ctx, alice, app.ListQuery{Limit: limit}); !errors.Is(err, app.ErrBadPageSize) {
			t.Errorf("limit %d: err = %v, want ErrBadPageSize", limit, err)
		}
	}
}
