package invoice_test

import (
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
	"github.com/shopmesh/shopmesh/services/invoice"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

const service = invoice.Name

// harness is one invoice service running in-process on a fresh database and
// virtual host, with a scratch queue receiving everything it publishes.
type harness struct {
	t       *testing.T
	ctx     context.Context
	base    string
	pool    *pgxpool.Pool
	ch      *amqp.Channel
	confirm chan amqp.Confirmation
	dbURL   string
	amqpURL string
	mod     func(*invoice.Config)
	stop    func()
	mu      sync.Mutex
	events  []outbox.Message
}

func start(t *testing.T, mod func(*invoice.Config)) *harness {
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
	if err := outbox.DeclareQueue(h.ch, outbox.QueueSpec{Name: outbox.QueueName(service, "inbox"), Types: consumed,
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

	h.dbURL, h.amqpURL, h.mod = dbURL, amqpURL, mod
	t.Cleanup(cancel)
	h.run()
	t.Cleanup(func() { h.stop() })
	return h
}

// run starts the service on the harness's database and virtual host.
func (h *harness) run() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(h.ctx)
	listening := make(chan string, 1)
	cfg := invoice.Config{Kit: servicekit.Config{
		DatabaseURL: h.dbURL, AMQPURL: h.amqpURL, RelayPollInterval: 50 * time.Millisecond,
		OnListen: func(addr string) { listening <- addr },
	}, VATRateBasisPoints: 1900}
	if h.mod != nil {
		h.mod(&cfg)
	}
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- invoice.Run(ctx, cfg, logger) }()
	h.stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && ctx.Err() == nil {
				h.t.Errorf("service stopped: %v", err)
			}
		case <-time.After(30 * time.Second):
			h.t.Errorf("service did not stop within 30s")
		}
		h.stop = func() {}
	}
	select {
	case addr := <-listening:
		h.base = "http://" + addr
	case err := <-done:
		h.t.Fatalf("service did not start: %v", err)
	case <-time.After(60 * time.Second):
		h.t.Fatal("service did not listen within 60s")
	}
}

// restart stops the service and starts it again on the same database and
// virtual host.
func (h *harness) restart() {
	h.t.Helper()
	h.stop()
	h.run()
}

func headerString(h amqp.Table, key string) string {
	s, _ := h[key].(string)
	return s
}

// publish sends an event as a producer's relay would: on the producer's
// exchange, routed by type, with the outbox envelope, confirmed.
func (h *harness) publish(id, eventType, aggregateID string, payload any) {
	h.t.Helper()
	body, err := json.Marshal(payload)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := contracts.Validate(eventType, body); err != nil {
		h.t.Fatalf("test event %s is invalid: %v", eventType, err)
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

// messages returns the envelopes of the published events of a type.
func (h *harness) messages(eventType string) []outbox.Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []outbox.Message
	for _, m := range h.events {
		if m.Type == eventType {
			out = append(out, m)
		}
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func (h *harness) eventually(what string, timeout time.Duration, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// count runs a counting query against the service's database.
func (h *harness) count(query string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.pool.QueryRow(h.ctx, query, args...).Scan(&n); err != nil {
		h.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// duplicates is how many redeliveries the inbox absorbed.
func (h *harness) duplicates() int {
	return h.count(`SELECT COALESCE((SELECT count FROM inbox_duplicates WHERE consumer = 'inbox'), 0)`)
}

// get requests a path as the gateway forwards it, as userID ("" for none),
// and decodes the JSON answer into v when it is not nil.
func (h *harness) get(method, path, userID string, v any) (int, string) {
	h.t.Helper()
	req, err := http.NewRequestWithContext(h.ctx, method, h.base+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if userID != "" {
		req.Header.Set(httpkit.HeaderUserID, userID)
		req.Header.Set(httpkit.HeaderUserRole, "customer")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, v); err != nil {
			h.t.Fatalf("%s %s: decode %s: %v", method, path, body, err)
		}
	}
	return resp.StatusCode, resp.Header.Get("Content-Type")
}

// expectProblem asserts a problem+json answer with the given status.
func (h *harness) expectProblem(method, path, userID string, want int) {
	h.t.Helper()
	status, ct := h.get(method, path, userID, nil)
	if status != want || ct != "application/problem+json" {
		h.t.Errorf("%s %s as %q: %d %s, want %d application/problem+json", method, path, userID, status, ct, want)
	}
}

func newID() string { return outbox.NewID() }

func eur(minor int64) contracts.Money { return contracts.Money{AmountMinor: minor, Currency: "EUR"} }

func fmtPath(format string, args ...any) string { return fmt.Sprintf(format, args...) }
