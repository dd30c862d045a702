package order_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/order"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

// waitFor bounds every wait in these tests.
const waitFor = 30 * time.Second

// harness is one order service running in-process on a fresh database and
// virtual host, with a scratch queue receiving everything it publishes and a
// confirmed publisher standing in for the other services.
type harness struct {
	t    *testing.T
	ctx  context.Context
	base string
	pool *pgxpool.Pool

	pubMu sync.Mutex
	pubCh *amqp.Channel

	mu     sync.Mutex
	events []outbox.Message
}

func start(t *testing.T, paymentTimeout time.Duration) *harness {
	t.Helper()
	dbURL, amqpURL := testenv.NewDatabase(t), testenv.NewVHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, ctx: ctx}

	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatalf("dial broker: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	// The topology `shopmesh migrate` sets up: the producers' exchanges and
	// the inbox queue bound to what the registry says the service consumes.
	consumed, producers := registryReads(order.Name)
	for _, p := range append(producers, order.Name) {
		if err := outbox.DeclareExchange(ch, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := outbox.DeclareQueue(ch, outbox.QueueSpec{Name: outbox.QueueName(order.Name, "inbox"), Types: consumed,
		DeliveryLimit: 20, SingleActiveConsumer: true}); err != nil {
		t.Fatal(err)
	}
	scratch, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatalf("scratch queue: %v", err)
	}
	if err := ch.QueueBind(scratch.Name, "#", outbox.ExchangeName(order.Name), false, nil); err != nil {
		t.Fatalf("bind scratch queue: %v", err)
	}
	deliveries, err := ch.Consume(scratch.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatalf("consume scratch queue: %v", err)
	}
	go func() {
		for d := range deliveries {
			m := outbox.Message{ID: headerString(d.Headers, outbox.HeaderID), Type: d.Type, Payload: d.Body,
				AggregateID: headerString(d.Headers, outbox.HeaderAggregateID), CausationID: headerString(d.Headers, outbox.HeaderCausationID)}
			h.mu.Lock()
			h.events = append(h.events, m)
			h.mu.Unlock()
		}
	}()
	if h.pubCh, err = conn.Channel(); err != nil {
		t.Fatalf("channel: %v", err)
	}
	if err := h.pubCh.Confirm(false); err != nil {
		t.Fatalf("confirm mode: %v", err)
	}

	if h.pool, err = pgxpool.New(ctx, dbURL); err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(h.pool.Close)

	listening := make(chan string, 1)
	cfg := order.Config{
		Kit: servicekit.Config{
			DatabaseURL: dbURL, AMQPURL: amqpURL, RelayPollInterval: 50 * time.Millisecond,
			OnListen: func(addr string) { listening <- addr },
		},
		PaymentTimeout: paymentTimeout,
	}
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- order.Run(ctx, cfg, logger) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && ctx.Err() == nil {
				t.Errorf("service stopped: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("service did not stop within 30s")
		}
	})
	select {
	case addr := <-listening:
		h.base = "http://" + addr
	case err := <-done:
		t.Fatalf("service did not start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("service did not listen within 60s")
	}
	return h
}

// registryReads returns the types the registry lists service as consuming,
// and their producers.
func registryReads(service string) (types, producers []string) {
	for _, et := range contracts.Registry() {
		if slices.Contains(et.Consumers, service) {
			types = append(types, et.Name)
			if !slices.Contains(producers, et.Producer) && et.Producer != service {
				producers = append(producers, et.Producer)
			}
		}
	}
	return types, producers
}

func headerString(h amqp.Table, key string) string {
	s, _ := h[key].(string)
	return s
}

// publish sends an event as its producer's relay would: on the producer's
// exchange, routed by type, with the outbox envelope, and waits for the
// broker's confirm. It returns the message id (new unless id is given, so a
// test can deliver the very same message twice).
func (h *harness) publish(t *testing.T, id, eventType, orderID string, payload any) string {
	t.Helper()
	if id == "" {
		id = outbox.NewID()
	}
	body, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := contracts.Validate(eventType, body); err != nil {
		t.Fatalf("test event %s breaks its contract: %v", eventType, err)
	}
	producer, err := outbox.ProducerOf(eventType)
	if err != nil {
		t.Fatal(err)
	}
	h.publishRaw(t, id, eventType, producer, orderID, body)
	return id
}

func (h *harness) publishRaw(t *testing.T, id, eventType, producer, aggregateID string, body []byte) {
	t.Helper()
	msg := amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: id, Type: eventType, AppId: producer,
		Body: body,
		Headers: amqp.Table{
			outbox.HeaderID: id, outbox.HeaderType: eventType, outbox.HeaderSource: producer,
			outbox.HeaderAggregateID: aggregateID, outbox.HeaderOccurredAt: time.Now().UTC().Format(time.RFC3339Nano),
			outbox.HeaderCorrelationID: id,
		},
	}
	ctx, cancel := context.WithTimeout(h.ctx, waitFor)
	defer cancel()
	h.pubMu.Lock()
	conf, err := h.pubCh.PublishWithDeferredConfirmWithContext(ctx, outbox.ExchangeName(producer), eventType, true, false, msg)
	h.pubMu.Unlock()
	if err != nil {
		t.Fatalf("publish %s: %v", eventType, err)
	}
	ok, err := conf.WaitContext(ctx)
	if err != nil || !ok {
		t.Fatalf("publish %s: not confirmed (%v)", eventType, err)
	}
}

// processed waits until the service's inbox holds message id: its effects
// are committed.
func (h *harness) processed(t *testing.T, id string) {
	t.Helper()
	h.poll(t, "message "+id+" processed", func() (bool, string) {
		var n int
		if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM inbox WHERE consumer = 'inbox' AND message_id = $1`, id).Scan(&n); err != nil {
			return false, err.Error()
		}
		return n == 1, fmt.Sprintf("%d inbox rows", n)
	})
}

// settle waits until everything published so far for the order has been
// applied: it sends a reply that never has an effect (a refund of an
// unknown payment) and waits for it. One order's messages are applied in
// queue order, so every earlier one, duplicates included, is done.
func (h *harness) settle(t *testing.T, o testOrder) {
	t.Helper()
	id := h.publish(t, "", contracts.TypePaymentRefundedV1, o.id, contracts.PaymentRefundedV1{
		RefundID: outbox.NewID(), PaymentID: outbox.NewID(), OrderID: o.id, UserID: o.user,
		Amount: contracts.Money{AmountMinor: 1, Currency: "EUR"}, Reason: contracts.ReasonCustomerRequest,
	})
	h.processed(t, id)
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
	h.poll(t, eventType+" of order "+orderID+" published", func() (bool, string) {
		found = h.received(t, orderID, eventType)
		return len(found) > 0, "none yet"
	})
	return found
}

func (h *harness) received(t *testing.T, orderID, eventType string) []map[string]any {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	var found []map[string]any
	for _, m := range h.events {
		if m.Type != eventType || m.AggregateID != orderID {
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

// poll checks cond until it holds, failing the test at the deadline with
// cond's last description of what it saw.
func (h *harness) poll(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (last seen: %s)", what, seen)
		}
		time.Sleep(25 * time.Millisecond)
	}
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

type response struct {
	status      int
	contentType string
	body        []byte
}

// request calls the service as the gateway would: the public path, the
// caller's identity in headers (none when user is empty).
func (h *harness) request(t *testing.T, method, path, user string, body []byte, header http.Header) response {
	t.Helper()
	req, err := http.NewRequestWithContext(h.ctx, method, h.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if user != "" {
		req.Header.Set(httpkit.HeaderUserID, user)
		req.Header.Set(httpkit.HeaderUserRole, "customer")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, contentType: res.Header.Get("Content-Type"), body: b}
}

func (h *harness) getOrder(t *testing.T, o testOrder) (orderJSON, int) {
	t.Helper()
	res := h.request(t, http.MethodGet, "/api/v1/orders/"+o.id, o.user, nil, nil)
	var v orderJSON
	if res.status == http.StatusOK {
		if err := json.Unmarshal(res.body, &v); err != nil {
			t.Fatalf("decode order: %v: %s", err, res.body)
		}
	}
	return v, res.status
}

// waitOrder polls the order until cond holds.
func (h *harness) waitOrder(t *testing.T, o testOrder, what string, cond func(orderJSON) bool) orderJSON {
	t.Helper()
	var v orderJSON
	h.poll(t, "order "+o.id+" "+what, func() (bool, string) {
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
	return h.publish(t, "", contracts.TypeCartCheckedOutV1, o.user, contracts.CartCheckedOutV1{
		OrderID: o.id, UserID: o.user, Lines: o.lines(), Total: eur(total),
		ShippingAddress: contracts.Address{Name: "Ada Lovelace", Line1: "1 Main St", City: "Berlin", PostalCode: "10115", Country: o.country},
		PaymentToken:    token, IdempotencyKey: "key-" + o.id,
	})
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
	return h.publish(t, id, eventType, o.id, payload)
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
