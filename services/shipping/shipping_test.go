package shipping_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/services/shipping"
	"github.com/shopmesh/shopmesh/tests/servicetest"
)

type shipmentView struct {
	OrderID       string  `json:"order_id"`
	ShipmentID    string  `json:"shipment_id"`
	Status        string  `json:"status"`
	Carrier       string  `json:"carrier"`
	Tracking      *string `json:"tracking"`
	FailureReason string  `json:"failure_reason"`
	Events        []struct {
		Status string    `json:"status"`
		At     time.Time `json:"at"`
	} `json:"events"`
}

func confirmed(orderID, userID, country string) contracts.OrderConfirmedV1 {
	return contracts.OrderConfirmedV1{
		OrderID: orderID, UserID: userID, PaymentID: newID(),
		Lines: []contracts.Line{
			{ProductID: newID(), SKU: "MUG-1", Name: "Mug", Quantity: 2, UnitPrice: eur(1250)},
			{ProductID: newID(), SKU: "TEA-1", Name: "Tea", Quantity: 1, UnitPrice: eur(499)},
		},
		Total: eur(2999),
		ShippingAddress: contracts.Address{Name: "Ada Lovelace", Line1: "1 Main St", City: "Berlin", PostalCode: "10115",
			Country: country},
	}
}

func cancelled(orderID, userID string, reason contracts.CancellationReason) contracts.OrderCancelledV1 {
	return contracts.OrderCancelledV1{OrderID: orderID, UserID: userID, Reason: reason, Total: eur(2999),
		Lines: []contracts.Line{{ProductID: newID(), SKU: "MUG-1", Name: "Mug", Quantity: 1, UnitPrice: eur(2999)}}}
}

func cancellationRequested(orderID, userID string) contracts.OrderCancellationRequestedV1 {
	return contracts.OrderCancellationRequestedV1{OrderID: orderID, UserID: userID, Reason: contracts.ReasonCustomerRequest}
}

func shortDelays(dispatch, delivery time.Duration) func(*shipping.Config) {
	return func(c *shipping.Config) { c.DispatchDelay, c.DeliveryDelay = dispatch, delivery }
}

func (h *harness) shipment(orderID, userID string) shipmentView {
	h.t.Helper()
	var v shipmentView
	if status, _ := h.get(http.MethodGet, fmtPath("/api/v1/orders/%s/shipment", orderID), userID, &v); status != http.StatusOK {
		h.t.Fatalf("GET shipment of %s: %d, want 200", orderID, status)
	}
	return v
}

func (h *harness) outboxCount(eventType string) int {
	return h.Query(`SELECT count(*) FROM watermill_outbox WHERE metadata->>'type' = $1`, eventType)
}

func TestShipmentIsCreatedOnceDispatchedAndDelivered(t *testing.T) {
	t.Parallel()
	h := start(t, shortDelays(200*time.Millisecond, 200*time.Millisecond))
	orderID, userID := newID(), newID()
	id := newID()
	h.Publish(id, contracts.TypeOrderConfirmedV1, orderID, confirmed(orderID, userID, "DE"))
	h.Publish(id, contracts.TypeOrderConfirmedV1, orderID, confirmed(orderID, userID, "DE"))

	h.Eventually("the delivery", func() bool { return len(h.Events(contracts.TypeShipmentDeliveredV1)) == 1 })
	h.Eventually("the duplicate to be absorbed", func() bool { return h.Duplicates() == 1 })
	for _, typ := range []string{contracts.TypeShipmentCreatedV1, contracts.TypeShipmentDispatchedV1, contracts.TypeShipmentDeliveredV1} {
		if n := h.outboxCount(typ); n != 1 {
			t.Errorf("%s published %d times, want 1", typ, n)
		}
	}
	created := published[contracts.ShipmentCreatedV1](h, contracts.TypeShipmentCreatedV1)
	dispatched := published[contracts.ShipmentDispatchedV1](h, contracts.TypeShipmentDispatchedV1)
	if len(created) != 1 || len(dispatched) != 1 {
		t.Fatalf("created %d, dispatched %d; want 1 each", len(created), len(dispatched))
	}
	if c := created[0]; c.OrderID != orderID || c.UserID != userID || c.Address.Country != "DE" || len(c.Lines) != 2 || c.Carrier == "" {
		t.Errorf("created = %+v", c)
	}
	v := h.shipment(orderID, userID)
	if v.Status != "delivered" || v.ShipmentID != created[0].ShipmentID || v.Tracking == nil ||
		*v.Tracking != dispatched[0].TrackingNumber || v.Carrier != created[0].Carrier {
		t.Errorf("shipment = %+v", v)
	}
	var steps []string
	for _, e := range v.Events {
		steps = append(steps, e.Status)
	}
	if len(steps) != 3 || steps[0] != "created" || steps[1] != "dispatched" || steps[2] != "delivered" {
		t.Fatalf("tracking events = %v, want created, dispatched, delivered", steps)
	}
	if gap := v.Events[1].At.Sub(v.Events[0].At); gap < 200*time.Millisecond {
		t.Errorf("dispatched %s after creation, want at least the 200ms dispatch delay", gap)
	}
	if gap := v.Events[2].At.Sub(v.Events[1].At); gap < 200*time.Millisecond {
		t.Errorf("delivered %s after dispatch, want at least the 200ms delivery delay", gap)
	}
}

func TestUndeliverableShipmentFails(t *testing.T) {
	t.Parallel()
	h := start(t, shortDelays(100*time.Millisecond, 100*time.Millisecond))
	orderID, userID := newID(), newID()
	h.Publish(newID(), contracts.TypeOrderConfirmedV1, orderID, confirmed(orderID, userID, "ZZ"))
	h.Eventually("the failure", func() bool { return len(h.Events(contracts.TypeShipmentFailedV1)) == 1 })
	failed := published[contracts.ShipmentFailedV1](h, contracts.TypeShipmentFailedV1)[0]
	if failed.OrderID != orderID || failed.Reason != contracts.FailureUndeliverable {
		t.Errorf("failed = %+v", failed)
	}
	if v := h.shipment(orderID, userID); v.Status != "failed" || v.FailureReason != "undeliverable" || v.Tracking != nil {
		t.Errorf("shipment = %+v", v)
	}

	// The order's cancellation for undeliverable changes nothing.
	id := newID()
	h.Publish(id, contracts.TypeOrderCancelledV1, orderID, cancelled(orderID, userID, contracts.ReasonUndeliverable))
	h.Publish(id, contracts.TypeOrderCancelledV1, orderID, cancelled(orderID, userID, contracts.ReasonUndeliverable))
	h.Eventually("the cancellation and its duplicate", func() bool {
		return h.Duplicates() == 1 && h.Query(`SELECT count(*) FROM inbox WHERE message_id = $1`, id) == 1
	})
	if n := h.outboxCount(contracts.TypeShipmentDispatchedV1) + h.outboxCount(contracts.TypeShipmentCancelledV1); n != 0 {
		t.Errorf("published %d dispatch or cancel events for an undeliverable shipment, want 0", n)
	}
	if v := h.shipment(orderID, userID); v.Status != "failed" {
		t.Errorf("status = %s, want failed", v.Status)
	}
}

func TestCancellationBeforeDispatchWins(t *testing.T) {
	t.Parallel()
	h := start(t, shortDelays(time.Hour, time.Hour))
	orderID, userID := newID(), newID()
	h.Publish(newID(), contracts.TypeOrderConfirmedV1, orderID, confirmed(orderID, userID, "DE"))
	id := newID()
	h.Publish(id, contracts.TypeOrderCancellationRequestedV1, orderID, cancellationRequested(orderID, userID))
	h.Publish(id, contracts.TypeOrderCancellationRequestedV1, orderID, cancellationRequested(orderID, userID))
	h.Eventually("the cancellation", func() bool { return len(h.Events(contracts.TypeShipmentCancelledV1)) == 1 })
	h.Eventually("the duplicate to be absorbed", func() bool { return h.Duplicates() == 1 })

	c := published[contracts.ShipmentCancelledV1](h, contracts.TypeShipmentCancelledV1)[0]
	if c.OrderID != orderID || c.UserID != userID || c.ShipmentID == "" {
		t.Errorf("cancelled = %+v", c)
	}
	// The order then cancels; shipping has nothing more to do.
	h.Publish(newID(), contracts.TypeOrderCancelledV1, orderID, cancelled(orderID, userID, contracts.ReasonCustomerRequest))
	h.Eventually("the order's cancellation", func() bool { return h.Query(`SELECT count(*) FROM inbox`) == 3 })
	if n := h.outboxCount(contracts.TypeShipmentCancelledV1); n != 1 {
		t.Errorf("shipment_cancelled published %d times, want 1", n)
	}
	v := h.shipment(orderID, userID)
	if v.Status != "cancelled" || v.Tracking != nil {
		t.Errorf("shipment = %+v", v)
	}
	if n := h.Query(`SELECT count(*) FROM shipments WHERE due_at IS NOT NULL`); n != 0 {
		t.Errorf("%d shipments still due, want none: a cancelled shipment is never dispatched", n)
	}
}

func TestOrderCancelledBeforeDispatchCancelsTheShipment(t *testing.T) {
	t.Parallel()
	h := start(t, shortDelays(time.Hour, time.Hour))
	orderID, userID := newID(), newID()
	h.Publish(newID(), contracts.TypeOrderConfirmedV1, orderID, confirmed(orderID, userID, "DE"))
	h.Publish(newID(), contracts.TypeOrderCancelledV1, orderID, cancelled(orderID, userID, contracts.ReasonCustomerRequest))
	h.Eventually("the cancellation", func() bool { return len(h.Events(contracts.TypeShipmentCancelledV1)) == 1 })
	if v := h.shipment(orderID, userID); v.Status != "cancelled" {
		t.Errorf("status = %s, want cancelled", v.Status)
	}
	// An order cancelled without a shipment (before confirmation) is a no-op.
	other := newID()
	h.Publish(newID(), contracts.TypeOrderCancelledV1, other, cancelled(other, userID, contracts.ReasonOutOfStock))
	h.Eventually("the second cancellation", func() bool { return h.Query(`SELECT count(*) FROM inbox`) == 3 })
	if n := h.Query(`SELECT count(*) FROM dead_letters`); n != 0 {
		t.Errorf("dead letters = %d, want 0", n)
	}
	if n := h.outboxCount(contracts.TypeShipmentCancelledV1); n != 1 {
		t.Errorf("shipment_cancelled published %d times, want 1", n)
	}
}

func TestCancellationAfterDispatchChangesNothing(t *testing.T) {
	t.Parallel()
	h := start(t, shortDelays(100*time.Millisecond, time.Hour))
	orderID, userID := newID(), newID()
	h.Publish(newID(), contracts.TypeOrderConfirmedV1, orderID, confirmed(orderID, userID, "DE"))
	h.Eventually("the dispatch", func() bool { return len(h.Events(contracts.TypeShipmentDispatchedV1)) == 1 })
	h.Publish(newID(), contracts.TypeOrderCancellationRequestedV1, orderID, cancellationRequested(orderID, userID))
	h.Eventually("the request", func() bool { return h.Query(`SELECT count(*) FROM inbox`) == 2 })
	if n := h.outboxCount(contracts.TypeShipmentCancelledV1); n != 0 {
		t.Errorf("shipment_cancelled published %d times, want 0", n)
	}
	if v := h.shipment(orderID, userID); v.Status != "dispatched" {
		t.Errorf("status = %s, want dispatched", v.Status)
	}
}

func TestCarrierDelaysSurviveARestart(t *testing.T) {
	t.Parallel()
	// The pickup is due well after the stop, even on a loaded machine; what
	// matters is that it is still pending when the service stops.
	h := start(t, shortDelays(4*time.Second, 200*time.Millisecond))
	orderID, userID := newID(), newID()
	h.Publish(newID(), contracts.TypeOrderConfirmedV1, orderID, confirmed(orderID, userID, "DE"))
	h.Eventually("the shipment", func() bool { return len(h.Events(contracts.TypeShipmentCreatedV1)) == 1 })
	h.Stop()
	if n := h.Query(`SELECT count(*) FROM shipments WHERE status = 'created'`); n != 1 {
		t.Fatalf("shipments waiting for pickup when stopped = %d, want 1", n)
	}
	h.Restart()
	h.Eventually("the delivery after the restart", func() bool { return len(h.Events(contracts.TypeShipmentDeliveredV1)) == 1 })
	if n := h.outboxCount(contracts.TypeShipmentDispatchedV1); n != 1 {
		t.Errorf("dispatched %d times, want 1", n)
	}
	if v := h.shipment(orderID, userID); v.Status != "delivered" {
		t.Errorf("status = %s, want delivered", v.Status)
	}
}

func TestShipmentAPI(t *testing.T) {
	t.Parallel()
	h := start(t, shortDelays(time.Hour, time.Hour))
	orderID, userID := newID(), newID()
	h.Publish(newID(), contracts.TypeOrderConfirmedV1, orderID, confirmed(orderID, userID, "DE"))
	path := fmtPath("/api/v1/orders/%s/shipment", orderID)
	h.Eventually("the shipment", func() bool { s, _ := h.get(http.MethodGet, path, userID, nil); return s == http.StatusOK })
	if v := h.shipment(orderID, userID); v.Status != "created" || v.Tracking != nil || len(v.Events) != 1 {
		t.Errorf("shipment = %+v, want created without tracking", v)
	}
	cases := []struct {
		name, method, path, user string
		want                     int
	}{
		{"another customer's shipment", http.MethodGet, path, newID(), http.StatusNotFound},
		{"no identity", http.MethodGet, path, "", http.StatusUnauthorized},
		{"unknown order", http.MethodGet, fmtPath("/api/v1/orders/%s/shipment", newID()), userID, http.StatusNotFound},
		{"malformed id", http.MethodGet, "/api/v1/orders/12345/shipment", userID, http.StatusBadRequest},
		{"wrong method", http.MethodDelete, path, userID, http.StatusMethodNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.For(t).ExpectProblem(c.method, c.path, servicetest.AsCustomer(c.user), c.want)
		})
	}
}
