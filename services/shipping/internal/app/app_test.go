package app_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/shipping/internal/app"
	"github.com/shopmesh/shopmesh/services/shipping/internal/domain"
)

// fakeStore is an in-memory store: a failed update changes nothing.
type fakeStore struct {
	shipments map[string]*domain.Shipment
	events    []outbox.Event
}

func newFakeStore() *fakeStore { return &fakeStore{shipments: map[string]*domain.Shipment{}} }

func (f *fakeStore) Shipment(_ context.Context, orderID string) (*domain.Shipment, error) {
	s, ok := f.shipments[orderID]
	if !ok {
		return nil, domain.ErrNotFound
	}
	return clone(s)
}

func (f *fakeStore) Update(_ context.Context, orderID string, fn app.UpdateFunc) error {
	var cur *domain.Shipment
	if s, ok := f.shipments[orderID]; ok {
		var err error
		if cur, err = clone(s); err != nil {
			return err
		}
	}
	next, events, err := fn(cur)
	if err != nil {
		return err
	}
	if next != nil {
		if f.shipments[orderID], err = clone(next); err != nil {
			return err
		}
	}
	f.events = append(f.events, events...)
	return nil
}

func (f *fakeStore) UpdateDue(ctx context.Context, now time.Time, limit int, fn app.UpdateFunc) (int, error) {
	var due []string
	for orderID, s := range f.shipments {
		if s.Due(now) {
			due = append(due, orderID)
		}
	}
	sort.Strings(due)
	n := 0
	var errs []error
	for _, orderID := range due[:min(limit, len(due))] {
		if err := f.Update(ctx, orderID, fn); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

func clone(s *domain.Shipment) (*domain.Shipment, error) {
	return domain.FromDatabase(domain.Stored{ID: s.ID(), OrderID: s.OrderID(), UserID: s.UserID(), Carrier: s.Carrier(),
		Tracking: s.Tracking(), Address: s.Address(), Lines: s.Lines(), Status: s.Status(), FailureReason: s.FailureReason(),
		FailureDetail: s.FailureDetail(), DueAt: s.DueAt(), History: s.History()})
}

// fakeCarrier refuses country ZZ and fails when told to.
type fakeCarrier struct {
	err     error
	pickups int
}

func (c *fakeCarrier) Name() string { return "Fake Post" }

func (c *fakeCarrier) Pickup(_ context.Context, s *domain.Shipment) (app.CarrierOutcome, error) {
	c.pickups++
	if c.err != nil {
		return app.CarrierOutcome{}, c.err
	}
	if s.Address().Country == "ZZ" {
		return app.CarrierOutcome{FailureReason: "undeliverable", FailureDetail: "no service"}, nil
	}
	return app.CarrierOutcome{Tracking: "TRK-" + s.ID()}, nil
}

func (c *fakeCarrier) Deliver(_ context.Context, _ *domain.Shipment) (app.CarrierOutcome, error) {
	return app.CarrierOutcome{}, c.err
}

// clock is a settable test clock.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time          { return c.now }
func (c *clock) Advance(d time.Duration) { c.now = c.now.Add(d) }
func newClock() *clock                   { return &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }
func timing() app.Timing                 { return app.Timing{Dispatch: time.Second, Delivery: 2 * time.Second} }
func types(events []outbox.Event) (t []string) {
	for _, e := range events {
		t = append(t, e.Type)
	}
	return t
}

func newService(t *testing.T, store *fakeStore, carrier *fakeCarrier, c *clock) *app.Service {
	t.Helper()
	n := 0
	svc, err := app.NewService(store, store, carrier, timing(), app.WithClock(c.Now),
		app.WithIDs(func() string { n++; return fmt.Sprintf("ship-%d", n) }))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func create(country string) app.CreateShipment {
	return app.CreateShipment{OrderID: "order-1", UserID: "user-1",
		Address: domain.Address{Name: "Ada", Line1: "1 Main St", City: "Berlin", PostalCode: "10115", Country: country},
		Lines:   []domain.Line{{ProductID: "p1", Quantity: 2}}}
}

func TestShipmentIsCreatedOnceThenDispatchedAndDelivered(t *testing.T) {
	t.Parallel()
	store, carrier, c := newFakeStore(), &fakeCarrier{}, newClock()
	svc := newService(t, store, carrier, c)
	ctx := context.Background()
	for range 2 {
		if err := svc.CreateShipment(ctx, create("DE")); err != nil {
			t.Fatalf("CreateShipment: %v", err)
		}
	}
	if len(store.shipments) != 1 || len(store.events) != 1 {
		t.Fatalf("%d shipments, events %v; want one shipment created once", len(store.shipments), types(store.events))
	}
	created := store.events[0].Payload.(contracts.ShipmentCreatedV1)
	if created.Carrier != "Fake Post" || created.Address.Country != "DE" || len(created.Lines) != 1 || created.Lines[0].Quantity != 2 {
		t.Errorf("created = %+v", created)
	}

	if n, err := svc.AdvanceDue(ctx, 10); n != 0 || err != nil {
		t.Errorf("AdvanceDue before the dispatch delay: %d, %v; want nothing", n, err)
	}
	c.Advance(time.Second)
	if n, err := svc.AdvanceDue(ctx, 10); n != 1 || err != nil {
		t.Fatalf("AdvanceDue at pickup: %d, %v", n, err)
	}
	c.Advance(time.Second)
	if n, _ := svc.AdvanceDue(ctx, 10); n != 0 {
		t.Error("delivered before the delivery delay")
	}
	c.Advance(time.Second)
	if n, err := svc.AdvanceDue(ctx, 10); n != 1 || err != nil {
		t.Fatalf("AdvanceDue at delivery: %d, %v", n, err)
	}
	want := []string{contracts.TypeShipmentCreatedV1, contracts.TypeShipmentDispatchedV1, contracts.TypeShipmentDeliveredV1}
	if got := types(store.events); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events = %v, want %v", got, want)
	}
	dispatched := store.events[1].Payload.(contracts.ShipmentDispatchedV1)
	if dispatched.TrackingNumber != "TRK-ship-1" || dispatched.Carrier != "Fake Post" {
		t.Errorf("dispatched = %+v", dispatched)
	}
	if n, _ := svc.AdvanceDue(ctx, 10); n != 0 {
		t.Error("a delivered shipment advanced again")
	}
}

func TestUndeliverableShipmentFailsAtPickup(t *testing.T) {
	t.Parallel()
	store, carrier, c := newFakeStore(), &fakeCarrier{}, newClock()
	svc := newService(t, store, carrier, c)
	ctx := context.Background()
	if err := svc.CreateShipment(ctx, create("ZZ")); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	if n, err := svc.AdvanceDue(ctx, 10); n != 1 || err != nil {
		t.Fatalf("AdvanceDue: %d, %v", n, err)
	}
	want := []string{contracts.TypeShipmentCreatedV1, contracts.TypeShipmentFailedV1}
	if got := types(store.events); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	if f := store.events[1].Payload.(contracts.ShipmentFailedV1); f.Reason != contracts.FailureUndeliverable {
		t.Errorf("failure = %+v, want undeliverable", f)
	}
	c.Advance(time.Hour)
	if n, _ := svc.AdvanceDue(ctx, 10); n != 0 {
		t.Error("a failed shipment advanced again")
	}
}

func TestCancelBeforeDispatchNeverDispatches(t *testing.T) {
	t.Parallel()
	for _, requested := range []bool{true, false} {
		t.Run(fmt.Sprintf("requested=%v", requested), func(t *testing.T) {
			t.Parallel()
			store, carrier, c := newFakeStore(), &fakeCarrier{}, newClock()
			svc := newService(t, store, carrier, c)
			ctx := context.Background()
			if err := svc.CreateShipment(ctx, create("DE")); err != nil {
				t.Fatal(err)
			}
			cmd := app.CancelShipment{OrderID: "order-1", Requested: requested}
			if outcome, err := svc.CancelShipment(ctx, cmd); outcome != app.CancelCancelled || err != nil {
				t.Fatalf("CancelShipment: %s, %v", outcome, err)
			}
			if outcome, err := svc.CancelShipment(ctx, cmd); outcome != app.CancelAlready || err != nil {
				t.Errorf("second CancelShipment: %s, %v; want already_cancelled", outcome, err)
			}
			c.Advance(time.Hour)
			if n, _ := svc.AdvanceDue(ctx, 10); n != 0 || carrier.pickups != 0 {
				t.Errorf("a cancelled shipment advanced (%d) or was picked up (%d)", n, carrier.pickups)
			}
			want := []string{contracts.TypeShipmentCreatedV1, contracts.TypeShipmentCancelledV1}
			if got := types(store.events); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("events = %v, want %v", got, want)
			}
		})
	}
}

func TestCancelAfterDispatchChangesNothing(t *testing.T) {
	t.Parallel()
	store, carrier, c := newFakeStore(), &fakeCarrier{}, newClock()
	svc := newService(t, store, carrier, c)
	ctx := context.Background()
	if err := svc.CreateShipment(ctx, create("DE")); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	if _, err := svc.AdvanceDue(ctx, 10); err != nil {
		t.Fatal(err)
	}
	outcome, err := svc.CancelShipment(ctx, app.CancelShipment{OrderID: "order-1", Requested: true})
	if outcome != app.CancelTooLate || err != nil {
		t.Fatalf("CancelShipment: %s, %v; want too_late", outcome, err)
	}
	if got := types(store.events); len(got) != 2 {
		t.Errorf("events = %v, want only created and dispatched", got)
	}
	c.Advance(time.Hour)
	if n, _ := svc.AdvanceDue(ctx, 10); n != 1 {
		t.Error("the dispatched shipment was not delivered")
	}
}

func TestCancelWithoutShipment(t *testing.T) {
	t.Parallel()
	store, carrier, c := newFakeStore(), &fakeCarrier{}, newClock()
	svc := newService(t, store, carrier, c)
	ctx := context.Background()
	if outcome, err := svc.CancelShipment(ctx, app.CancelShipment{OrderID: "order-1"}); outcome != app.CancelNoShipment || err != nil {
		t.Errorf("order cancelled without shipment: %s, %v; want no_shipment", outcome, err)
	}
	if _, err := svc.CancelShipment(ctx, app.CancelShipment{OrderID: "order-1", Requested: true}); !errors.Is(err, app.ErrNoShipmentYet) {
		t.Errorf("cancellation requested without shipment: err = %v, want ErrNoShipmentYet", err)
	}
	if len(store.events) != 0 {
		t.Errorf("events = %v, want none", types(store.events))
	}
}

func TestCarrierFailureLeavesShipmentDue(t *testing.T) {
	t.Parallel()
	store, carrier, c := newFakeStore(), &fakeCarrier{err: errors.New("carrier unreachable")}, newClock()
	svc := newService(t, store, carrier, c)
	ctx := context.Background()
	if err := svc.CreateShipment(ctx, create("DE")); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	if n, err := svc.AdvanceDue(ctx, 10); n != 0 || err == nil {
		t.Fatalf("AdvanceDue with a failing carrier: %d, %v; want an error", n, err)
	}
	carrier.err = nil
	if n, err := svc.AdvanceDue(ctx, 10); n != 1 || err != nil {
		t.Errorf("AdvanceDue after recovery: %d, %v", n, err)
	}
}

func TestShipmentIsVisibleToItsOwnerOnly(t *testing.T) {
	t.Parallel()
	store, carrier, c := newFakeStore(), &fakeCarrier{}, newClock()
	svc := newService(t, store, carrier, c)
	ctx := context.Background()
	if err := svc.CreateShipment(ctx, create("DE")); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Shipment(ctx, "user-1", "order-1"); err != nil {
		t.Errorf("owner: %v", err)
	}
	if _, err := svc.Shipment(ctx, "user-2", "order-1"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("other user: err = %v, want ErrNotFound", err)
	}
}
