package analytics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/analytics"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

const wait = 20 * time.Second

// harness is one analytics service running in-process on a fresh database
// and virtual host, fed with events published to the producers' exchanges.
type harness struct {
	t        *testing.T
	ctx      context.Context
	base     string
	amqpURL  string
	pool     *pgxpool.Pool
	ch       *amqp.Channel
	confirm  chan amqp.Confirmation
	consumed []string
}

func start(t *testing.T) *harness {
	t.Helper()
	dbURL, amqpURL := testenv.NewDatabase(t), testenv.NewVHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, ctx: ctx, amqpURL: amqpURL}

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
	producers := map[string]bool{}
	for _, et := range contracts.Registry() {
		if slices.Contains(et.Consumers, analytics.Name) {
			h.consumed = append(h.consumed, et.Name)
			producers[et.Producer] = true
		}
	}
	for p := range producers {
		if err := outbox.DeclareExchange(h.ch, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := outbox.DeclareExchange(h.ch, analytics.Name); err != nil {
		t.Fatal(err)
	}
	if err := outbox.DeclareQueue(h.ch, outbox.QueueSpec{Name: outbox.QueueName(analytics.Name, analytics.Consumer),
		Types: h.consumed, DeliveryLimit: 20, SingleActiveConsumer: true}); err != nil {
		t.Fatal(err)
	}
	if err := h.ch.Confirm(false); err != nil {
		t.Fatalf("confirm mode: %v", err)
	}
	h.confirm = h.ch.NotifyPublish(make(chan amqp.Confirmation, 16))
	if h.pool, err = pgxpool.New(ctx, dbURL); err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(h.pool.Close)

	listening := make(chan string, 1)
	cfg := analytics.Config{
		Kit: servicekit.Config{DatabaseURL: dbURL, AMQPURL: amqpURL, RelayPollInterval: 50 * time.Millisecond,
			OnListen: func(addr string) { listening <- addr }},
		Consumer: func(c *outbox.ConsumerConfig) { c.RetryBackoff = 20 * time.Millisecond },
	}
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- analytics.Run(ctx, cfg, logger) }()
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

// publish sends an event as a producer's relay would: on the producer's
// exchange, routed by type, with the outbox envelope (occurred_at = at;
// none when at is zero), confirmed. A []byte payload is sent as it is.
func (h *harness) publish(id, eventType, aggregateID string, at time.Time, payload any) {
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
	headers := amqp.Table{outbox.HeaderID: id, outbox.HeaderType: eventType, outbox.HeaderSource: producer,
		outbox.HeaderAggregateID: aggregateID, outbox.HeaderCorrelationID: id}
	if !at.IsZero() {
		headers[outbox.HeaderOccurredAt] = at.UTC().Format(time.RFC3339Nano)
	}
	err = h.ch.PublishWithContext(h.ctx, outbox.ExchangeName(producer), eventType, true, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: id, Type: eventType, AppId: producer,
		Headers: headers, Body: body,
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
	return h.query(`SELECT count(*) FROM inbox WHERE consumer = $1`, analytics.Consumer)
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

// getJSON fetches path as an administrator and decodes a 200 answer into v.
func (h *harness) getJSON(path string, v any) {
	h.t.Helper()
	res := h.do(http.MethodGet, path, newID(), "admin", nil)
	if res.status != http.StatusOK {
		h.t.Fatalf("GET %s: %d %s", path, res.status, res.body)
	}
	if err := json.Unmarshal(res.body, v); err != nil {
		h.t.Fatalf("GET %s: decode %s: %v", path, res.body, err)
	}
}

// producer is a scratch database holding one producing service's outbox:
// the retained log that a relay forwards and a replay re-delivers.
type producer struct {
	h    *harness
	pool *pgxpool.Pool
	ob   *outbox.Outbox
}

func (h *harness) producer(service string) *producer {
	h.t.Helper()
	pool, err := pgxpool.New(h.ctx, testenv.NewDatabase(h.t))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(pool.Close)
	if err := outbox.Migrate(h.ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
		h.t.Fatal(err)
	}
	ob, err := outbox.New(service)
	if err != nil {
		h.t.Fatal(err)
	}
	return &producer{h: h, pool: pool, ob: ob}
}

// emit commits events to the producer's outbox, one transaction each.
func (p *producer) emit(events ...outbox.Event) {
	p.h.t.Helper()
	for _, e := range events {
		if err := pgx.BeginFunc(p.h.ctx, p.pool, func(tx pgx.Tx) error { return p.ob.Publish(p.h.ctx, tx, e) }); err != nil {
			p.h.t.Fatalf("emit %s: %v", e.Type, err)
		}
	}
}

// relay forwards the producer's outbox to its exchange until the test ends.
func (p *producer) relay() {
	p.h.t.Helper()
	r, err := outbox.NewRelay(outbox.RelayConfig{Outbox: p.ob, Pool: p.pool, AMQPURL: p.h.amqpURL,
		PollInterval: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		p.h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(p.h.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	p.h.t.Cleanup(func() { cancel(); <-done })
}

// replay re-delivers the producer's whole retained log of the types the
// service consumes to its inbox queue, as `shopmesh replay` does.
func (p *producer) replay() int {
	p.h.t.Helper()
	n, err := outbox.Replay(p.h.ctx, outbox.ReplayRequest{Source: p.pool, AMQPURL: p.h.amqpURL,
		Queue: outbox.QueueName(analytics.Name, analytics.Consumer), Types: p.h.consumed})
	if err != nil {
		p.h.t.Fatalf("replay: %v", err)
	}
	return n
}

func newID() string { return outbox.NewID() }

func eur(minor int64) contracts.Money { return contracts.Money{AmountMinor: minor, Currency: "EUR"} }
