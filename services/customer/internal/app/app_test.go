package app_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/services/customer/internal/app"
	"github.com/shopmesh/shopmesh/services/customer/internal/domain"
)

// fakeStore keeps the read model in memory, storing what the update
// functions return the way the real store does (a nil result stores nothing).
type fakeStore struct {
	profiles map[string]domain.StoredProfile
	orders   map[string]domain.StoredOrder
	writes   int
}

func newFake() *fakeStore {
	return &fakeStore{profiles: map[string]domain.StoredProfile{}, orders: map[string]domain.StoredOrder{}}
}

func (f *fakeStore) UpdateProfile(_ context.Context, userID string, fn app.ProfileFunc) error {
	s, ok := f.profiles[userID]
	if !ok {
		s = domain.StoredProfile{UserID: userID}
	}
	p, err := domain.ProfileFromDatabase(s)
	if err != nil {
		return err
	}
	next, err := fn(p)
	if err != nil || next == nil {
		return err
	}
	f.writes++
	a, has := next.Address()
	s = domain.StoredProfile{UserID: userID, Email: next.Email(), Name: next.Name(), RegisteredAt: next.RegisteredAt(),
		AddressAt: next.AddressAt(), DeactivatedAt: next.DeactivatedAt()}
	if has {
		s.Address = &a
	}
	f.profiles[userID] = s
	return nil
}

func (f *fakeStore) UpdateOrder(_ context.Context, orderID string, fn app.OrderFunc) error {
	var cur *domain.Order
	if s, ok := f.orders[orderID]; ok {
		var err error
		if cur, err = domain.OrderFromDatabase(s); err != nil {
			return err
		}
	}
	next, err := fn(cur)
	if err != nil || next == nil {
		return err
	}
	f.writes++
	s := domain.StoredOrder{ID: next.ID(), UserID: next.UserID(), Status: next.Status(), CancellationReason: next.CancellationReason(),
		PlacedAt: next.PlacedAt(), UpdatedAt: next.UpdatedAt(), Timeline: next.Timeline()}
	if t, ok := next.Total(); ok {
		s.Total = &t
	}
	f.orders[orderID] = s
	return nil
}

func (f *fakeStore) Profile(_ context.Context, userID string) (*domain.Profile, error) {
	s, ok := f.profiles[userID]
	if !ok {
		return nil, domain.ErrNotFound
	}
	return domain.ProfileFromDatabase(s)
}

func (f *fakeStore) OrdersCount(_ context.Context, userID string) (int, error) {
	n := 0
	for _, o := range f.orders {
		if o.UserID == userID {
			n++
		}
	}
	return n, nil
}

func (f *fakeStore) History(_ context.Context, userID string, after *app.Cursor, limit int) ([]*domain.Order, error) {
	var out []*domain.Order
	for _, s := range f.orders {
		if s.UserID != userID {
			continue
		}
		if after != nil && (s.PlacedAt.After(after.PlacedAt) || s.PlacedAt.Equal(after.PlacedAt) && s.ID >= after.OrderID) {
			continue
		}
		o, err := domain.OrderFromDatabase(s)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b *domain.Order) int {
		if c := b.PlacedAt().Compare(a.PlacedAt()); c != 0 {
			return c
		}
		if a.ID() > b.ID() {
			return -1
		}
		return 1
	})
	return out[:min(limit, len(out))], nil
}

const ada = "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f50"

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func orderID(i int) string { return fmt.Sprintf("0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c%02d", i) }

func TestProfileAndHistory(t *testing.T) {
	f := newFake()
	s := app.NewService(f)
	ctx := context.Background()

	if _, err := s.Me(ctx, ada); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Me before any event: %v, want ErrNotFound", err)
	}
	if err := s.AddressChanged(ctx, ada, domain.Address{Line1: "1 Main St", City: "Berlin", PostalCode: "10115", Country: "DE"}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Me(ctx, ada); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Me before the registration: %v, want ErrNotFound", err)
	}
	if err := s.Registered(ctx, ada, "ada@example.com", "Ada", t0); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := s.OrderChanged(ctx, orderID(i), ada, domain.Change{Step: domain.StepPlaced, At: t0.Add(time.Duration(i) * time.Minute),
			Total: &domain.Money{AmountMinor: 1000, Currency: "EUR"}}); err != nil {
			t.Fatal(err)
		}
	}
	writes := f.writes
	if err := s.OrderChanged(ctx, orderID(0), ada, domain.Change{Step: domain.StepPlaced, At: t0}); err != nil {
		t.Fatal(err)
	}
	if f.writes != writes {
		t.Error("a step announced again was written")
	}
	if err := s.OrderChanged(ctx, orderID(0), "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f51", domain.Change{Step: domain.StepConfirmed, At: t0}); !errors.Is(err, domain.ErrOwnerMismatch) {
		t.Errorf("another customer's event: %v", err)
	}

	me, err := s.Me(ctx, ada)
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := me.Profile.Address(); me.OrdersCount != 5 || me.Profile.Email() != "ada@example.com" || !ok || a.City != "Berlin" {
		t.Errorf("me = %+v", me)
	}

	var seen []string
	q := app.HistoryQuery{Limit: 2}
	for range 10 {
		page, err := s.History(ctx, ada, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Orders {
			seen = append(seen, o.ID())
		}
		if page.Next == nil {
			break
		}
		q.After = page.Next
	}
	want := []string{orderID(4), orderID(3), orderID(2), orderID(1), orderID(0)}
	if !slices.Equal(seen, want) {
		t.Errorf("paged history = %v, want %v", seen, want)
	}
}

func TestQueriesRejectBadInput(t *testing.T) {
	s := app.NewService(newFake())
	ctx := context.Background()
	if _, err := s.Me(ctx, ""); !errors.Is(err, app.ErrUnauthenticated) {
		t.Errorf("Me without caller: %v", err)
	}
	if _, err := s.History(ctx, "", app.HistoryQuery{}); !errors.Is(err, app.ErrUnauthenticated) {
		t.Errorf("History without caller: %v", err)
	}
	for _, n := range []int{-1, app.MaxPageSize + 1} {
		if _, err := s.History(ctx, ada, app.HistoryQuery{Limit: n}); !errors.Is(err, app.ErrBadPageSize) {
			t.Errorf("limit %d: %v", n, err)
		}
	}
	if _, err := s.Me(ctx, "not-a-uuid"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Me for a malformed id: %v", err)
	}
	if page, err := s.History(ctx, "not-a-uuid", app.HistoryQuery{}); err != nil || len(page.Orders) != 0 || page.Orders == nil {
		t.Errorf("history of a malformed id: %+v, %v", page, err)
	}
}
