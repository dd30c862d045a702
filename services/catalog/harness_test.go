package catalog_test

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
	"github.com/shopmesh/shopmesh/services/catalog"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

const service = "catalog"

// waitTimeout bounds every wait for the service to react.
const waitTimeout = 20 * time.Second

// harness is one catalog service running in-process on a fresh database
// and virtual host, with a scratch queue receiving everything it publishes.
type harness struct {
	t    *testing.T
	base string
	db   *pgxpool.Pool
	pub  *amqp.Channel

	mu       sync.Mutex
	received []received
}

// received is an event the service published, as the scratch queue got it.
type received struct {
	ID, Type, AggregateID, CausationID string
	Payload                            json.RawMessage
}

func testLogger() *slog.Logger {
	if os.Getenv("SHOPMESH_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// consumedTypes are the types the registry says the service consumes.
func consumedTypes() []string {
	var out []string
	for _, t := range contracts.Registry() {
		if slices.Contains(t.Consumers, service) {
			out = append(out, t.Name)
		}
	}
	return out
}

// start declares the topology as `shopmesh migrate` would, starts the
// service with cfg (database, broker and address filled in) and waits until
// it listens.
func start(t *testing.T, mod func(*catalog.Config)) *harness {
	t.Helper()
	dbURL, amqpURL := testenv.NewDatabase(t), testenv.NewVHost(t)
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatalf("dial broker: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	producers := []string{service}
	for _, typ := range consumedTypes() {
		p, err := outbox.ProducerOf(typ)
		if err != nil {
			t.Fatal(err)
		}
		producers = append(producers, p)
	}
	for _, p := range producers {
		if err := outbox.DeclareExchange(ch, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := outbox.DeclareQueue(ch, outbox.QueueSpec{Name: outbox.QueueName(service, "inbox"), Types: consumedTypes(),
		DeliveryLimit: 20, SingleActiveConsumer: true}); err != nil {
		t.Fatal(err)
	}
	scratch, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(scratch.Name, "#", outbox.ExchangeName(service), false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(scratch.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, pub: pub}
	go func() {
		for d := range deliveries {
			id, _ := d.Headers[outbox.HeaderID].(string)
			agg, _ := d.Headers[outbox.HeaderAggregateID].(string)
			cause, _ := d.Headers[outbox.HeaderCausationID].(string)
			h.mu.Lock()
			h.received = append(h.received, received{ID: id, Type: d.RoutingKey, AggregateID: agg, CausationID: cause, Payload: d.Body})
			h.mu.Unlock()
		}
	}()

	addr := make(chan string, 1)
	cfg := catalog.Config{Kit: servicekit.Config{DatabaseURL: dbURL, AMQPURL: amqpURL, RelayPollInterval: 50 * time.Millisecond,
		OnListen: func(a string) { addr <- a }}}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- catalog.Run(ctx, cfg, testLogger()) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && err != context.Canceled {
				t.Errorf("service stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("service did not stop within 30s")
		}
	})
	select {
	case a := <-addr:
		h.base = "http://" + a
	case err := <-done:
		t.Fatalf("service failed to start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("service did not listen within 60s")
	}
	h.db, err = pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.db.Close)
	return h
}

// publish sends an upstream event as its producer's relay would, checked
// against its contract first, and returns its message id.
func (h *harness) publish(eventType, aggregateID string, payload any) string {
	h.t.Helper()
	id := outbox.NewID()
	h.publishID(id, eventType, aggregateID, payload)
	return id
}

// publishID publishes with a given message id (a redelivery keeps its id).
func (h *harness) publishID(id, eventType, aggregateID string, payload any) {
	h.t.Helper()
	body, err := json.Marshal(payload)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := contracts.Validate(eventType, body); err != nil {
		h.t.Fatalf("test event %s breaks its contract: %v", eventType, err)
	}
	h.publishRaw(id, eventType, aggregateID, body)
}

func (h *harness) publishRaw(id, eventType, aggregateID string, body []byte) {
	h.t.Helper()
	h.publishRawAt(id, eventType, aggregateID, body, time.Now())
}

// publishRawAt publishes with the given envelope occurred_at.
func (h *harness) publishRawAt(id, eventType, aggregateID string, body []byte, occurredAt time.Time) {
	h.t.Helper()
	producer, err := outbox.ProducerOf(eventType)
	if err != nil {
		h.t.Fatal(err)
	}
	headers := amqp.Table{
		outbox.HeaderID: id, outbox.HeaderType: eventType, outbox.HeaderSource: producer,
		outbox.HeaderAggregateID: aggregateID, outbox.HeaderOccurredAt: occurredAt.UTC().Format(time.RFC3339Nano),
		outbox.HeaderCorrelationID: id,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := h.pub.PublishWithDeferredConfirmWithContext(ctx, outbox.ExchangeName(producer), eventType, true, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: id, Type: eventType, Headers: headers, Body: body,
	})
	if err != nil {
		h.t.Fatalf("publish %s: %v", eventType, err)
	}
	if ok, err := dc.WaitContext(ctx); !ok || err != nil {
		h.t.Fatalf("publish %s not confirmed: %v", eventType, err)
	}
}

// waitEvent waits until the service published an event of eventType whose
// payload satisfies match, decodes it into v (may be nil) and returns it.
func (h *harness) waitEvent(eventType string, v any, match func(json.RawMessage) bool) received {
	h.t.Helper()
	var got received
	h.waitFor("event "+eventType, func() (bool, string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		var seen []string
		for _, r := range h.received {
			seen = append(seen, r.Type)
			if r.Type == eventType && (match == nil || match(r.Payload)) {
				got = r
				return true, ""
			}
		}
		return false, fmt.Sprintf("received %v", seen)
	})
	if err := contracts.Validate(got.Type, got.Payload); err != nil {
		h.t.Errorf("published %s breaks its contract: %v", got.Type, err)
	}
	if v != nil {
		if err := json.Unmarshal(got.Payload, v); err != nil {
			h.t.Fatal(err)
		}
	}
	return got
}

// forOrder and forProduct match payloads by their order or product id.
func forOrder(id string) func(json.RawMessage) bool {
	return func(p json.RawMessage) bool {
		var v struct {
			OrderID string `json:"order_id"`
		}
		return json.Unmarshal(p, &v) == nil && v.OrderID == id
	}
}

func forProduct(id string) func(json.RawMessage) bool {
	return func(p json.RawMessage) bool {
		var v struct {
			ProductID string `json:"product_id"`
		}
		return json.Unmarshal(p, &v) == nil && v.ProductID == id
	}
}

func (h *harness) waitFor(what string, cond func() (bool, string)) {
	h.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s: %s", waitTimeout, what, detail)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) count(query string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.db.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		h.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// outboxCount counts the events of eventType the service wrote ("" for all).
func (h *harness) outboxCount(eventType string) int {
	h.t.Helper()
	return h.count(`SELECT count(*) FROM watermill_outbox WHERE $1 = '' OR metadata->>'type' = $1`, eventType)
}

// outboxCountFor counts events of eventType about one order or product.
func (h *harness) outboxCountFor(eventType, key, id string) int {
	h.t.Helper()
	return h.count(`SELECT count(*) FROM watermill_outbox WHERE metadata->>'type' = $1 AND payload->>$2 = $3`, eventType, key, id)
}

func (h *harness) duplicates() int {
	h.t.Helper()
	return h.count(`SELECT coalesce((SELECT count FROM inbox_duplicates WHERE consumer = 'inbox'), 0)`)
}

// applied reports whether the consumer has claimed message id.
func (h *harness) applied(id string) bool {
	h.t.Helper()
	return h.count(`SELECT count(*) FROM inbox WHERE consumer = 'inbox' AND message_id = $1`, id) == 1
}

func (h *harness) waitApplied(id string) {
	h.t.Helper()
	h.waitFor("message "+id+" applied", func() (bool, string) { return h.applied(id), "" })
}

// caller is who a request comes from, as the gateway's identity headers say.
type caller struct{ userID, role string }

var (
	anonymous = caller{}
	admin     = caller{userID: "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f01", role: "admin"}
	customer  = caller{userID: "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f50", role: "customer"}
)

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) problem(t *testing.T) httpkit.Problem {
	t.Helper()
	var p httpkit.Problem
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("content type %q, want application/problem+json (body %s)", ct, r.body)
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Errorf("problem body %s: %v", r.body, err)
	}
	return p
}

func (h *harness) do(method, path string, who caller, body []byte, headers ...string) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if who.userID != "" {
		req.Header.Set(httpkit.HeaderUserID, who.userID)
		req.Header.Set(httpkit.HeaderUserRole, who.role)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}
