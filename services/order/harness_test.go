package order_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/order"
	"github.com/shopmesh/shopmesh/tests/servicetest"
)

// harness is one order service running in-process (see servicetest),
// with the order saga's helpers on top.
type harness struct {
	*servicetest.Service
	ctx  context.Context
	pool *pgxpool.Pool
}

// start starts the service with the given payment timeout; its waits are
// bounded by 30s, as the saga takes several hops.
func start(t *testing.T, paymentTimeout time.Duration) *harness {
	t.Helper()
	run := func(ctx context.Context, kit servicekit.Config, logger *slog.Logger) error {
		return order.Run(ctx, order.Config{Kit: kit, PaymentTimeout: paymentTimeout}, logger)
	}
	svc := servicetest.Start(t, servicetest.Spec{Name: order.Name, Run: run, Wait: 30 * time.Second})
	return &harness{Service: svc, ctx: svc.Context(), pool: svc.Pool}
}

// settle waits until everything published so far for the order has been
// applied: it sends a reply that never has an effect (a refund of an
// unknown payment) and waits for it. One order's messages are applied in
// queue order, so every earlier one, duplicates included, is done.
func (h *harness) settle(t *testing.T, o testOrder) {
	t.Helper()
	id := h.For(t).Publish("", contracts.TypePaymentRefundedV1, o.id, contracts.PaymentRefundedV1{
		RefundID: outbox.NewID(), PaymentID: outbox.NewID(), OrderID: o.id, UserID: o.user,
		Amount: contracts.Money{AmountMinor: 1, Currency: "EUR"}, Reason: contracts.ReasonCustomerRequest,
	})
	h.For(t).WaitApplied(id)
}

// outboxCounts counts the events the service wrote to its outbox for an
// order, by type: the exact record of what it published. Events still
// waiting in the outbox's schedule are counted as "<type> (scheduled)".
func (h *harness) outboxCounts(t *testing.T, orderID string) map[string]int {
	t.Helper()
	rows, err := h.pool.Query(h.ctx, `
		SELECT metadata->>'type', count(*) FROM watermill_outbox WHERE payload->>'order_id' = $1 GROUP BY 1
		UNION ALL
		SELECT metadata->>'type' || ' (scheduled)', count(*) FROM outbox_scheduled WHERE payload->>'order_id' = $1 GROUP BY 1`, orderID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var (
			typ string
			n   int
		)
		if err := rows.Scan(&typ, &n); err != nil {
			t.Fatal(err)
		}
		counts[typ] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return counts
}

// published waits until the scratch queue received an event of eventType
// for the order, and returns the payloads of all received so far.
func (h *harness) published(t *testing.T, orderID, eventType string) []map[string]any {
	t.Helper()
	var found []map[string]any
	h.For(t).Poll(eventType+" of order "+orderID+" published", func() (bool, string) {
		found = h.received(t, orderID, eventType)
		return len(found) > 0, "none yet"
	})
	return found
}

func (h *harness) received(t *testing.T, orderID, eventType string) []map[string]any {
	t.Helper()
	var found []map[string]any
	for _, m := range h.Events(eventType) {
		if m.AggregateID != orderID {
			continue
		}
		var p map[string]any
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatalf("payload of %s: %v", m.Type, err)
		}
		found = append(found, p)
	}
	return found
}

// HTTP.

type orderJSON struct {
	ID                 string  `json:"id"`
	Status             string  `json:"status"`
	CancellationReason *string `json:"cancellation_reason"`
	Lines              []struct {
		ProductID string          `json:"product_id"`
		SKU       string          `json:"sku"`
		Name      string          `json:"name"`
		Quantity  int             `json:"quantity"`
		UnitPrice contracts.Money `json:"unit_price"`
	} `json:"lines"`
	Total           contracts.Money `json:"total"`
	ShippingAddress map[string]any  `json:"shipping_address"`
	Timeline        []struct {
		Type string    `json:"type"`
		At   time.Time `json:"at"`
	} `json:"timeline"`
	PlacedAt  time.Time `json:"placed_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func (o orderJSON) timeline() []string {
	var types []string
	for _, e := range o.Timeline {
		types = append(types, e.Type)
	}
	return types
}

func (o orderJSON) reason() string {
	if o.CancellationReason == nil {
		return ""
	}
	return *o.CancellationReason
}

type response = servicetest.Response

// request calls the service as the gateway would: the public path, the
// caller's identity in headers (none when user is empty), the body with
// exactly the headers given.
func (h *harness) request(t *testing.T, method, path, user string, body []byte, header http.Header) response {
	t.Helper()
	var pairs []string
	for k, vs := range header {
		for _, v := range vs {
			pairs = append(pairs, k, v)
		}
	}
	if len(body) == 0 {
		body = nil // no body, so no Content-Type either
	}
	return h.For(t).Do(method, path, servicetest.AsCustomer(user), body, pairs...)
}

func (h *harness) getOrder(t *testing.T, o testOrder) (orderJSON, int) {
	t.Helper()
	res := h.request(t, http.MethodGet, "/api/v1/orders/"+o.id, o.user, nil, nil)
	var v orderJSON
	if res.Status == http.StatusOK {
		if err := json.Unmarshal(res.Body, &v); err != nil {
			t.Fatalf("decode order: %v: %s", err, res.Body)
		}
	}
	return v, res.Status
}

// waitOrder polls the order until cond holds.
func (h *harness) waitOrder(t *testing.T, o testOrder, what string, cond func(orderJSON) bool) orderJSON {
	t.Helper()
	var v orderJSON
	h.For(t).Poll("order "+o.id+" "+what, func() (bool, string) {
		var status int
		v, status = h.getOrder(t, o)
		return status == http.StatusOK && cond(v), fmt.Sprintf("HTTP %d, status %q, reason %q, timeline %v", status, v.Status, v.reason(), v.timeline())
	})
	return v
}

func (h *harness) waitStatus(t *testing.T, o testOrder, status string) orderJSON {
	t.Helper()
	return h.waitOrder(t, o, "to be "+status, func(v orderJSON) bool { return v.Status == status })
}

func (h *harness) cancel(t *testing.T, o testOrder) response {
	t.Helper()
	return h.request(t, http.MethodPost, "/api/v1/orders/"+o.id+"/cancel", o.user, nil, nil)
}

// Test orders and the other services' replies.

type testOrder struct {
	id, user string
	payment  string
	shipment string
	country  string
}

func newOrder() testOrder {
	return testOrder{id: outbox.NewID(), user: outbox.NewID(), payment: outbox.NewID(), shipment: outbox.NewID(), country: "DE"}
}

var (
	productMug = "0190d6a6-0000-7000-8000-0000000000a1"
	productTea = "0190d6a6-0000-7000-8000-0000000000a2"
)

func eur(minor int64) contracts.Money { return contracts.Money{AmountMinor: minor, Currency: "EUR"} }

func (o testOrder) lines() []contracts.Line {
	return []contracts.Line{
		{ProductID: productMug, SKU: "MUG-1", Name: "Mug", Quantity: 2, UnitPrice: eur(1250)},
		{ProductID: productTea, SKU: "TEA-1", Name: "Tea", Quantity: 1, UnitPrice: eur(500)},
	}
}

func (o testOrder) stockLines() []contracts.StockLine {
	return []contracts.StockLine{{ProductID: productMug, Quantity: 2}, {ProductID: productTea, Quantity: 1}}
}

const total = 3000

func (h *harness) checkout(t *testing.T, o testOrder, token string) string {
	t.Helper()
	return h.For(t).Publish("", contracts.TypeCartCheckedOutV1, o.user, contracts.CartCheckedOutV1{
		OrderID: o.id, UserID: o.user, Lines: o.lines(), Total: eur(total),
		ShippingAddress: contracts.Address{Name: "Ada Lovelace", Line1: "1 Main St", City: "Berlin", PostalCode: "10115", Country: o.country},
		PaymentToken:    token, IdempotencyKey: "key-" + o.id,
	})
}

// awaitPayment places o and reserves its stock, and returns the payment
// request the order then publishes, with its deadline.
func (h *harness) awaitPayment(t *testing.T, o testOrder) (req map[string]any, expires time.Time) {
	t.Helper()
	h.place(t, o)
	h.reply(t, o, "", contracts.TypeStockReservedV1)
	req = h.published(t, o.id, contracts.TypeOrderPaymentRequestedV1)[0]
	expires, err := time.Parse(time.RFC3339Nano, req["expires_at"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return req, expires
}

// place checks an order out and waits until the service placed it.
func (h *harness) place(t *testing.T, o testOrder) {
	t.Helper()
	h.checkout(t, o, "tok_ok")
	h.waitStatus(t, o, "pending")
}

// reply publishes one reply of another service for o, with the given
// message id (new when empty), and returns the id.
func (h *harness) reply(t *testing.T, o testOrder, id, eventType string) string {
	t.Helper()
	var payload any
	switch eventType {
	case contracts.TypeStockReservedV1:
		payload = contracts.StockReservedV1{OrderID: o.id, Lines: o.stockLines()}
	case contracts.TypeStockReservationFailedV1:
		payload = contracts.StockReservationFailedV1{OrderID: o.id, Shortages: []contracts.Shortage{{ProductID: productMug, Requested: 2, Available: 1}}}
	case contracts.TypeStockReleasedV1:
		payload = contracts.StockReleasedV1{OrderID: o.id, Lines: o.stockLines()}
	case contracts.TypeStockReturnedV1:
		payload = contracts.StockReturnedV1{OrderID: o.id, Lines: o.stockLines()}
	case contracts.TypePaymentAuthorizedV1:
		payload = contracts.PaymentAuthorizedV1{PaymentID: o.payment, OrderID: o.id, UserID: o.user, Amount: eur(total), ProviderReference: "sim-" + o.payment}
	case contracts.TypePaymentDeclinedV1:
		payload = contracts.PaymentDeclinedV1{PaymentID: o.payment, OrderID: o.id, UserID: o.user, Amount: eur(total), Reason: "card_declined"}
	case contracts.TypePaymentRefundedV1:
		payload = contracts.PaymentRefundedV1{RefundID: outbox.NewID(), PaymentID: o.payment, OrderID: o.id, UserID: o.user, Amount: eur(total), Reason: contracts.ReasonUndeliverable}
	case contracts.TypeShipmentCreatedV1:
		payload = contracts.ShipmentCreatedV1{ShipmentID: o.shipment, OrderID: o.id, UserID: o.user, Carrier: "simpost",
			Address: contracts.Address{Name: "Ada Lovelace", Line1: "1 Main St", City: "Berlin", PostalCode: "10115", Country: o.country},
			Lines:   o.stockLines()}
	case contracts.TypeShipmentDispatchedV1:
		payload = contracts.ShipmentDispatchedV1{ShipmentID: o.shipment, OrderID: o.id, UserID: o.user, Carrier: "simpost", TrackingNumber: "SP-" + o.shipment[:8]}
	case contracts.TypeShipmentDeliveredV1:
		payload = contracts.ShipmentDeliveredV1{ShipmentID: o.shipment, OrderID: o.id, UserID: o.user}
	case contracts.TypeShipmentFailedV1:
		payload = contracts.ShipmentFailedV1{ShipmentID: o.shipment, OrderID: o.id, UserID: o.user, Reason: contracts.FailureUndeliverable, Detail: "no such address"}
	case contracts.TypeShipmentCancelledV1:
		payload = contracts.ShipmentCancelledV1{ShipmentID: o.shipment, OrderID: o.id, UserID: o.user}
	default:
		t.Fatalf("no test reply for %s", eventType)
	}
	return h.For(t).Publish(id, eventType, o.id, payload)
}

// replyTwice publishes a reply, delivers the very same message again (a
// broker redelivery) and sends the reply once more as a new message (a
// producer that published it twice): only the first may have an effect.
func (h *harness) replyTwice(t *testing.T, o testOrder, eventType string) {
	t.Helper()
	id := h.reply(t, o, "", eventType)
	h.reply(t, o, id, eventType)
	h.reply(t, o, "", eventType)
}

// inOrder drives o to confirmed with a shipment created.
func (h *harness) confirmed(t *testing.T, o testOrder) {
	t.Helper()
	h.place(t, o)
	h.reply(t, o, "", contracts.TypeStockReservedV1)
	h.reply(t, o, "", contracts.TypePaymentAuthorizedV1)
	h.reply(t, o, "", contracts.TypeShipmentCreatedV1)
	h.waitOrder(t, o, "to be confirmed with a shipment", func(v orderJSON) bool {
		return v.Status == "confirmed" && slices.Contains(v.timeline(), "shipment_created")
	})
}
