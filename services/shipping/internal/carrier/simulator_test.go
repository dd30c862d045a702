package carrier_test

import (
	"context"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/services/shipping/internal/carrier"
	"github.com/shopmesh/shopmesh/services/shipping/internal/domain"
)

func shipment(t *testing.T, id, country string) *domain.Shipment {
	t.Helper()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s, err := domain.NewShipment(id, "o", "u", "Post",
		domain.Address{Name: "Ada", Line1: "1 Main St", City: "X", PostalCode: "1", Country: country},
		[]domain.Line{{ProductID: "p", Quantity: 1}}, now, now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSimulatorRefusesCountryZZ(t *testing.T) {
	t.Parallel()
	sim, err := carrier.NewSimulator("Post")
	if err != nil {
		t.Fatal(err)
	}
	out, err := sim.Pickup(context.Background(), shipment(t, "s1", "ZZ"))
	if err != nil || out.FailureReason != "undeliverable" || out.Tracking != "" {
		t.Errorf("ZZ pickup = %+v, %v; want undeliverable", out, err)
	}
	a, err := sim.Pickup(context.Background(), shipment(t, "s1", "DE"))
	if err != nil || a.FailureReason != "" || a.Tracking == "" {
		t.Fatalf("DE pickup = %+v, %v; want a tracking number", a, err)
	}
	b, _ := sim.Pickup(context.Background(), shipment(t, "s1", "DE"))
	c, _ := sim.Pickup(context.Background(), shipment(t, "s2", "DE"))
	if a.Tracking != b.Tracking || a.Tracking == c.Tracking {
		t.Errorf("tracking numbers %q %q %q: want stable per shipment, distinct across", a.Tracking, b.Tracking, c.Tracking)
	}
}
