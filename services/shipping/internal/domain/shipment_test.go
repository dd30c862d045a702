package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/services/shipping/internal/domain"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var address = domain.Address{Name: "Ada", Line1: "1 Main St", City: "Berlin", PostalCode: "10115", Country: "DE"}

func newShipment(t *testing.T) *domain.Shipment {
	t.Helper()
	s, err := domain.NewShipment("ship-1", "order-1", "user-1", "Post", address,
		[]domain.Line{{ProductID: "p1", Quantity: 2}}, t0, t0.Add(time.Second))
	if err != nil {
		t.Fatalf("NewShipment: %v", err)
	}
	return s
}

func statuses(s *domain.Shipment) []domain.Status {
	var out []domain.Status
	for _, step := range s.History() {
		out = append(out, step.Status)
	}
	return out
}

func equal(a, b []domain.Status) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNewShipmentRejectsInvalidInput(t *testing.T) {
	t.Parallel()
	lines := []domain.Line{{ProductID: "p1", Quantity: 1}}
	badCountry := address
	badCountry.Country = "Germany"
	noCity := address
	noCity.City = ""
	cases := map[string]struct {
		carrier string
		address domain.Address
		lines   []domain.Line
	}{
		"no carrier":   {"", address, lines},
		"no lines":     {"Post", address, nil},
		"zero qty":     {"Post", address, []domain.Line{{ProductID: "p1", Quantity: 0}}},
		"bad country":  {"Post", badCountry, lines},
		"missing city": {"Post", noCity, lines},
	}
	for name, c := range cases {
		_, err := domain.NewShipment("s", "o", "u", c.carrier, c.address, c.lines, t0, t0)
		if !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestShipmentIsDispatchedThenDelivered(t *testing.T) {
	t.Parallel()
	s := newShipment(t)
	if s.Due(t0) {
		t.Error("due before its pickup time")
	}
	if !s.Due(t0.Add(time.Second)) {
		t.Error("not due at its pickup time")
	}
	if err := s.Deliver(t0); !errors.Is(err, domain.ErrTransition) {
		t.Errorf("Deliver before dispatch: err = %v, want ErrTransition", err)
	}
	if err := s.Dispatch("TRK", t0.Add(time.Second), t0.Add(3*time.Second)); err != nil {
		t.Fatalf("Dispatch: %v", err)
	}
	if err := s.Dispatch("TRK2", t0.Add(time.Second), t0.Add(3*time.Second)); !errors.Is(err, domain.ErrTransition) {
		t.Errorf("second Dispatch: err = %v, want ErrTransition", err)
	}
	if s.Due(t0.Add(2*time.Second)) || !s.Due(t0.Add(3*time.Second)) {
		t.Errorf("delivery due at %v, want %v", s.DueAt(), t0.Add(3*time.Second))
	}
	if err := s.Deliver(t0.Add(3 * time.Second)); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	want := []domain.Status{domain.StatusCreated, domain.StatusDispatched, domain.StatusDelivered}
	if got := statuses(s); !equal(got, want) {
		t.Errorf("history = %v, want %v", got, want)
	}
	if s.Due(t0.Add(time.Hour)) || !s.DueAt().IsZero() {
		t.Error("a delivered shipment is still due")
	}
	if s.Tracking() != "TRK" {
		t.Errorf("tracking = %q, want TRK", s.Tracking())
	}
}

func TestUndeliverableShipmentFailsWithoutDispatch(t *testing.T) {
	t.Parallel()
	s := newShipment(t)
	if err := s.Fail("undeliverable", "no service", t0.Add(time.Second)); err != nil {
		t.Fatalf("Fail: %v", err)
	}
	want := []domain.Status{domain.StatusCreated, domain.StatusFailed}
	if got := statuses(s); !equal(got, want) {
		t.Errorf("history = %v, want %v", got, want)
	}
	if err := s.Dispatch("TRK", t0, t0); !errors.Is(err, domain.ErrTransition) {
		t.Errorf("Dispatch after failure: err = %v, want ErrTransition", err)
	}
	if err := s.Cancel(t0); !errors.Is(err, domain.ErrAlreadyDispatched) {
		t.Errorf("Cancel after failure: err = %v, want ErrAlreadyDispatched", err)
	}
	if s.FailureReason() != "undeliverable" || s.Due(t0.Add(time.Hour)) {
		t.Errorf("reason %q, due %v", s.FailureReason(), s.DueAt())
	}
}

func TestCancelBeforeDispatchOnly(t *testing.T) {
	t.Parallel()
	s := newShipment(t)
	if err := s.Cancel(t0); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if s.Status() != domain.StatusCancelled || s.Due(t0.Add(time.Hour)) {
		t.Errorf("status %s, due %v; want cancelled and never due", s.Status(), s.DueAt())
	}
	if err := s.Cancel(t0); !errors.Is(err, domain.ErrAlreadyCancelled) {
		t.Errorf("second Cancel: err = %v, want ErrAlreadyCancelled", err)
	}
	if err := s.Dispatch("TRK", t0, t0); !errors.Is(err, domain.ErrTransition) {
		t.Errorf("Dispatch after Cancel: err = %v, want ErrTransition", err)
	}

	dispatched := newShipment(t)
	if err := dispatched.Dispatch("TRK", t0, t0); err != nil {
		t.Fatal(err)
	}
	if err := dispatched.Cancel(t0); !errors.Is(err, domain.ErrAlreadyDispatched) {
		t.Errorf("Cancel after dispatch: err = %v, want ErrAlreadyDispatched", err)
	}
}

func TestFromDatabaseRoundTripAndChecks(t *testing.T) {
	t.Parallel()
	s := newShipment(t)
	st := domain.Stored{ID: s.ID(), OrderID: s.OrderID(), UserID: s.UserID(), Carrier: s.Carrier(), Address: s.Address(),
		Lines: s.Lines(), Status: s.Status(), DueAt: s.DueAt(), History: s.History()}
	got, err := domain.FromDatabase(st)
	if err != nil {
		t.Fatalf("FromDatabase: %v", err)
	}
	if len(got.Changes()) != 0 || got.Status() != domain.StatusCreated || !got.DueAt().Equal(s.DueAt()) {
		t.Errorf("loaded %+v", got)
	}
	bad := st
	bad.DueAt = time.Time{}
	if _, err := domain.FromDatabase(bad); err == nil {
		t.Error("created shipment without due time loaded")
	}
	bad = st
	bad.Status = domain.StatusDelivered
	if _, err := domain.FromDatabase(bad); err == nil {
		t.Error("shipment whose history does not end in its status loaded")
	}
}
