package domain

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

const (
	ada   = "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f50"
	order = "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func total() *Money { return &Money{AmountMinor: 2500, Currency: "EUR"} }

func TestOrderLifecycleInAnyOrder(t *testing.T) {
	happy := []Change{
		{Step: StepPlaced, At: at(0), Total: total()},
		{Step: StepConfirmed, At: at(1), Total: total()},
		{Step: StepShipped, At: at(2)},
		{Step: StepDelivered, At: at(3)},
		{Step: StepCompleted, At: at(3), Total: total()},
	}
	undeliverable := []Change{
		{Step: StepPlaced, At: at(0), Total: total()},
		{Step: StepConfirmed, At: at(1), Total: total()},
		{Step: StepShipped, At: at(2)},
		{Step: StepCancelled, At: at(4), Total: total(), Reason: "undeliverable"},
	}
	cases := []struct {
		name       string
		changes    []Change
		wantStatus Status
		wantReason string
	}{
		{"happy path", happy, StatusDelivered, ""},
		{"undeliverable", undeliverable, StatusCancelled, "undeliverable"},
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, c := range cases {
		for run := range 50 {
			changes := slices.Clone(c.changes)
			if run > 0 {
				rnd.Shuffle(len(changes), func(i, j int) { changes[i], changes[j] = changes[j], changes[i] })
			}
			// Every event is delivered twice somewhere in the sequence.
			changes = append(changes, changes...)
			o, _ := NewOrder(order, ada)
			for _, ch := range changes {
				if _, err := o.Apply(ada, ch); err != nil {
					t.Fatal(err)
				}
			}
			if o.Status() != c.wantStatus || o.CancellationReason() != c.wantReason {
				t.Errorf("%s run %d: status %s reason %q, want %s %q", c.name, run, o.Status(), o.CancellationReason(), c.wantStatus, c.wantReason)
			}
			if tot, ok := o.Total(); !ok || tot != *total() {
				t.Errorf("%s run %d: total %+v %v", c.name, run, tot, ok)
			}
			if !o.PlacedAt().Equal(at(0)) || !o.UpdatedAt().Equal(c.changes[len(c.changes)-1].At) {
				t.Errorf("%s run %d: placed %s updated %s", c.name, run, o.PlacedAt(), o.UpdatedAt())
			}
			tl := o.Timeline()
			if len(tl) != len(c.changes) {
				t.Fatalf("%s run %d: timeline %+v", c.name, run, tl)
			}
			for i, e := range tl {
				if e.Step != c.changes[i].Step {
					t.Errorf("%s run %d: timeline step %d = %s, want %s", c.name, run, i, e.Step, c.changes[i].Step)
				}
			}
		}
	}
}

func TestTerminalStatusNeverMovesBack(t *testing.T) {
	o, _ := NewOrder(order, ada)
	mustApply(t, o, Change{Step: StepCancelled, At: at(5), Total: total(), Reason: "out_of_stock"})
	mustApply(t, o, Change{Step: StepPlaced, At: at(0), Total: total()})
	if o.Status() != StatusCancelled || o.CancellationReason() != "out_of_stock" || !o.PlacedAt().Equal(at(0)) {
		t.Errorf("order = status %s reason %q placed %s", o.Status(), o.CancellationReason(), o.PlacedAt())
	}
	// Before the placement arrives, the earliest event stands in for it.
	p, _ := NewOrder(order, ada)
	mustApply(t, p, Change{Step: StepShipped, At: at(3)})
	if _, ok := p.Total(); ok || p.Status() != StatusShipped || !p.PlacedAt().Equal(at(3)) {
		t.Errorf("shipped first: status %s placed %s", p.Status(), p.PlacedAt())
	}
	mustApply(t, p, Change{Step: StepConfirmed, At: at(1), Total: total()})
	if p.Status() != StatusShipped || !p.PlacedAt().Equal(at(1)) {
		t.Errorf("confirmed second: status %s placed %s", p.Status(), p.PlacedAt())
	}
	if changed, _ := p.Apply(ada, Change{Step: StepConfirmed, At: at(9)}); changed {
		t.Error("a step recorded twice")
	}
}

func TestOrderApplyRejectsBadInput(t *testing.T) {
	o, _ := NewOrder(order, ada)
	cases := []struct {
		user string
		c    Change
		want error
	}{
		{"0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f51", Change{Step: StepPlaced, At: at(0)}, ErrOwnerMismatch},
		{ada, Change{Step: "teleported", At: at(0)}, ErrInvalid},
		{ada, Change{Step: StepPlaced}, ErrInvalid},
		{ada, Change{Step: StepPlaced, At: at(0), Total: &Money{-1, "EUR"}}, ErrInvalid},
	}
	for _, c := range cases {
		if _, err := o.Apply(c.user, c.c); !errors.Is(err, c.want) {
			t.Errorf("Apply(%s, %+v) = %v, want %v", c.user, c.c, err, c.want)
		}
	}
	if len(o.Timeline()) != 0 || len(o.Added()) != 0 {
		t.Error("rejected changes were recorded")
	}
	if _, err := NewOrder("", ada); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewOrder without id: %v", err)
	}
	if _, err := OrderFromDatabase(StoredOrder{ID: order, UserID: ada, Status: "lost"}); err == nil {
		t.Error("a stored order with an unknown status was accepted")
	}
}

func TestProfile(t *testing.T) {
	p, _ := NewProfile(ada)
	home := Address{Name: "Ada", Line1: "1 Main St", City: "Berlin", PostalCode: "10115", Country: "DE"}
	work := Address{Name: "Ada", Line1: "2 Work Rd", City: "Berlin", PostalCode: "10117", Country: "DE"}
	if !p.ChangeAddress(work, at(10)) {
		t.Fatal("first address not applied")
	}
	if p.ChangeAddress(home, at(5)) {
		t.Error("an older address replaced a newer one")
	}
	if p.Registered() {
		t.Error("registered before the registration")
	}
	p.Register("ada@example.com", "Ada", at(0))
	p.Deactivate(at(20))
	p.Deactivate(at(30))
	a, ok := p.Address()
	if !ok || a != work || !p.Registered() || p.Email() != "ada@example.com" || !p.DeactivatedAt().Equal(at(20)) {
		t.Errorf("profile = %+v", p)
	}
}

func mustApply(t *testing.T, o *Order, c Change) {
	t.Helper()
	if _, err := o.Apply(o.UserID(), c); err != nil {
		t.Fatal(err)
	}
}
