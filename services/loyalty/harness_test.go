package loyalty_test

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/shopmesh/shopmesh/services/loyalty"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

const (
	service = loyalty.Name
	wait    = 20 * time.Second
)

// harness is one loyalty service running in-process on a fresh database and
// virtual host, with a scratch queue receiving everything it publishes.
type harness struct {
	t       *testing.T
	ctx     context.Context
	base    string
	pool    *pgxpool.Pool
	ch      *amqp.Channel
	confirm chan amqp.Confirmation
	mu      sync.Mutex
	events  []outbox.Message
}

func start(t *testing.T, mod func(*loyalty.Config)) *harness {
	t.Helper()
	dbURL, amqpURL := testenv.NewDatabase(t), testenv.NewVHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, ctx: ctx}

	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatalf("dial broker: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	if h.ch, err = conn.Channel(); err != nil {
		t.Fatalf("channel: %v", err)
	}
	// The topology `shopmesh migrate` sets up: producers' exchanges and the
	// service's inbox queue bound to the types the registry says it consumes.
	var consumed []string
	producers := map[string]bool{service: true}
	for _, et := range contracts.Registry() {
		if slices.Contains(et.Consumers, service) {
			consumed = append(consumed, et.Name)
			producers[et.Producer] = true
		}
	}
	for p := range producers {
		if err := outbox.DeclareExchange(h.ch, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := outbox.DeclareQueue(h.ch, outbox.QueueSpec{Name: outbox.QueueName(service, loyalty.Consumer), Types: consumed,
		DeliveryLimit: 20, SingleActiveConsumer: true}); err != nil {
		t.Fatal(err)
	}
	scratch, err := h.ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatalf("scratch queue: %v", err)
	}
	if err := h.ch.QueueBind(scratch.Name, "#", outbox.ExchangeName(service), false, nil); err != nil {
		t.Fatalf("bind scratch queue: %v", err)
	}
	deliveries, err := h.ch.Consume(scratch.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatalf("consume scratch queue: %v", err)
	}
	go func() {
		for d := range deliveries {
			m := outbox.Message{ID: headerString(d.Headers, outbox.HeaderID), Type: d.Type, Payload: d.Body,
				AggregateID: headerString(d.Headers, outbox.HeaderAggregateID)}
			h.mu.Lock()
			h.events = append(h.events, m)
			h.mu.Unlock()
		}
	}()
	if err := h.ch.Confirm(false); err != nil {
		t.Fatalf("confirm mode: %v", err)
	}
	h.confirm = h.ch.NotifyPublish(make(chan amqp.Confirmation, 16))

	if h.pool, err = pgxpool.New(ctx, dbURL); err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(h.pool.Close)

	listening := make(chan string, 1)
	cfg := loyalty.Config{
		Kit: servicekit.Config{DatabaseURL: dbURL, AMQPURL: amqpURL, RelayPollInterval: 50 * time.Millisecond,
			OnListen: func(addr string) { listening <- addr }},
		Consumer: func(c *outbox.ConsumerConfig) { c.RetryBackoff = 20 * time.Millisecond },
	}
	if mod != nil {
		mod(&cfg)
	}
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- loyalty.Run(ctx, cfg, logger) }()
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

func headerString(h amqp.Table, key string) string {
	s, _ := h[key].(string)
	return s
}

// publish sends an event as a producer's relay would: on the producer's
// exchange, routed by type, with the outbox envelope, confirmed. A payload
// given as []byte is sent as it is (invalid events).
func (h *harness) publish(id, eventType, aggregateID string, payload any) {
	h.t.Helper()
	body, raw := payload.([]byte)
	if !raw {
		var err error
		if body, err = json.Marshal(payload); err != nil {
			h.t.Fatal(err)
		}
		if err := contracts.Validate(eventType, body); err != nil {
			h.t.Fatalf("test event %s is invalid: %v", eventType, err)
		}
	}
	producer, err := outbox.ProducerOf(eventType)
	if err != nil {
		h.t.Fatal(err)
	}
	err = h.ch.PublishWithContext(h.ctx, outbox.ExchangeName(producer), eventType, true, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: id, Type: eventType, AppId: producer,
		Headers: amqp.Table{
			outbox.HeaderID: id, outbox.HeaderType: eventType, outbox.HeaderSource: producer,
			outbox.HeaderAggregateID: aggregateID, outbox.HeaderOccurredAt: time.Now().UTC().Format(time.RFC3339Nano),
			outbox.HeaderCorrelationID: id,
		},
		Body: body,
	})
	if err != nil {
		h.t.Fatalf("publish %s: %v", eventType, err)
	}
	select {
	case c := <-h.confirm:
		if !c.Ack {
			h.t.Fatalf("broker refused %s", eventType)
		}
	case <-time.After(10 * time.Second):
		h.t.Fatalf("no confirm for %s", eventType)
	}
}

// published returns the events of a type the service published, decoded.
func published[T any](h *harness, eventType string) []T {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []T
	for _, m := range h.events {
		if m.Type != eventType {
			continue
		}
		var v T
		if err := contracts.Decode(eventType, m.Payload, &v); err != nil {
			h.t.Errorf("published %s does not meet its contract: %v", eventType, err)
			continue
		}
		out = append(out, v)
	}
	return out
}

// count returns how many events of a type the service published.
func (h *harness) count(eventType string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.events {
		if m.Type == eventType {
			n++
		}
	}
	return n
}

// eventually polls cond until it holds or the deadline passes.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s", wait, what)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

// query runs a counting query against the service's database.
func (h *harness) query(sql string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.pool.QueryRow(h.ctx, sql, args...).Scan(&n); err != nil {
		h.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// applied is how many messages the inbox consumer has applied.
func (h *harness) applied() int {
	return h.query(`SELECT count(*) FROM inbox WHERE consumer = $1`, loyalty.Consumer)
}

// duplicates is how many redeliveries the inbox absorbed.
func (h *harness) duplicates() int {
	return h.query(`SELECT COALESCE((SELECT count FROM inbox_duplicates WHERE consumer = $1), 0)`, loyalty.Consumer)
}

type response struct {
	status      int
	contentType string
	body        []byte
}

// do sends a request as the gateway forwards it, as userID with role ("" for
// no identity).
func (h *harness) do(method, path, userID, role string, body []byte) response {
	h.t.Helper()
	req, err := http.NewRequestWithContext(h.ctx, method, h.base+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if userID != "" {
		req.Header.Set(httpkit.HeaderUserID, userID)
		req.Header.Set(httpkit.HeaderUserRole, role)
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
	return response{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: b}
}

// getJSON fetches path as a customer and decodes a 200 answer into v.
func (h *harness) getJSON(path, userID string, v any) {
	h.t.Helper()
	res := h.do(http.MethodGet, path, userID, "customer", nil)
	if res.status != http.StatusOK {
		h.t.Fatalf("GET %s: %d %s", path, res.status, res.body)
	}
	if err := json.Unmarshal(res.body, v); err != nil {
		h.t.Fatalf("GET %s: decode %s: %v", path, res.body, err)
	}
}

func newID() string { return outbox.NewID() }

func eur(minor int64) contracts.Money { return contracts.Money{AmountMinor: minor, Currency: "EUR"} }
