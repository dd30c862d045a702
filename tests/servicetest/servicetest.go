// Package servicetest runs one service in-process for its component tests:
// on a fresh database and RabbitMQ virtual host from testenv, with the
// topology `shopmesh migrate` would declare, a confirmed publisher standing in
// for the producers it consumes from, and a scratch queue capturing every
// event it publishes. Its helpers publish events with the outbox envelope,
// call the HTTP API with the gateway's identity headers, query the service's
// database and wait with bounded polls.
//
// Every helper reports failures to the test that started the service, or to
// the test For bound it to: a subtest calls helpers through s.For(t), since
// failing a parent test from a subtest's goroutine is not allowed. This
// package is for tests only: production code must not import it.
package servicetest

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/internal/wait"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

// DefaultWait bounds every wait of a service whose Spec sets no Wait.
const DefaultWait = 20 * time.Second

// Spec says which service to start and how.
type Spec struct {
	// Name is the service's name: its exchange, and what the registry lists
	// as consumer of the types its inbox queue is bound to.
	Name string
	// Consumer names the service's inbox consumer; "inbox" when empty.
	Consumer string
	// Run starts the service with kit (database, broker, relay poll interval
	// and OnListen filled in) and blocks until ctx ends, as the service's
	// own Run does; it is where a test sets the rest of the service's Config.
	Run func(ctx context.Context, kit servicekit.Config, logger *slog.Logger) error
	// Wait bounds every wait for the service to react; DefaultWait when zero.
	Wait time.Duration
}

// Service is one service running in-process for a test, with its helpers
// reporting to one test (see For).
type Service struct {
	t testing.TB
	*running
}

// running is the service itself, shared by every Service For returns.
type running struct {
	spec Spec
	ctx  context.Context

	// BaseURL is where the service's HTTP API listens ("http://host:port").
	BaseURL string
	// DatabaseURL and AMQPURL are the service's fresh database and virtual host.
	DatabaseURL, AMQPURL string
	// Pool is connected to the service's database.
	Pool *pgxpool.Pool
	// Consumed are the types the registry says the service consumes: what
	// its inbox queue is bound to.
	Consumed []string

	// stop stops the service, reporting to t; a no-op while it is stopped.
	stop func(t testing.TB)

	pubMu sync.Mutex
	pub   *amqp.Channel

	mu     sync.Mutex
	events []outbox.Message
}

// Start declares the topology as `shopmesh migrate` would, starts the
// service and waits until it listens. The service stops when the test ends.
func Start(t testing.TB, spec Spec) *Service {
	t.Helper()
	if spec.Consumer == "" {
		spec.Consumer = "inbox"
	}
	if spec.Wait == 0 {
		spec.Wait = DefaultWait
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := &Service{t: t, running: &running{spec: spec, ctx: ctx, stop: func(testing.TB) {},
		DatabaseURL: testenv.NewDatabase(t), AMQPURL: testenv.NewVHost(t)}}

	s.declare()
	conn, err := amqp.Dial(s.AMQPURL)
	if err != nil {
		t.Fatalf("dial broker: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	s.capture(ch)
	if s.pub, err = conn.Channel(); err != nil {
		t.Fatalf("channel: %v", err)
	}
	if err := s.pub.Confirm(false); err != nil {
		t.Fatalf("confirm mode: %v", err)
	}
	if s.Pool, err = pgxpool.New(ctx, s.DatabaseURL); err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(s.Pool.Close)

	s.run()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// For returns the same running service with its helpers reporting to t:
// how a subtest calls them.
func (s *Service) For(t testing.TB) *Service {
	return &Service{t: t, running: s.running}
}

// declare sets up what `shopmesh migrate` would: the exchanges of the
// service and of its producers, and its inbox queue bound to the types it
// consumes. A broker starved of CPU can fail to start a quorum queue in time
// (INTERNAL_ERROR, cluster_not_formed), which closes the connection; then it
// declares again on a new one, for up to declareWait, as the service's own
// consumer would.
func (s *Service) declare() {
	s.t.Helper()
	exchanges := []string{s.spec.Name}
	for _, et := range contracts.Registry() {
		if slices.Contains(et.Consumers, s.spec.Name) {
			s.Consumed = append(s.Consumed, et.Name)
			if !slices.Contains(exchanges, et.Producer) {
				exchanges = append(exchanges, et.Producer)
			}
		}
	}
	spec := outbox.QueueSpec{Name: s.InboxQueue(), Types: s.Consumed, DeliveryLimit: 20, SingleActiveConsumer: true}
	once := func() error {
		conn, err := amqp.Dial(s.AMQPURL)
		if err != nil {
			return err
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		for _, e := range exchanges {
			if err := outbox.DeclareExchange(ch, e); err != nil {
				return err
			}
		}
		return outbox.DeclareQueue(ch, spec)
	}
	ctx, cancel := context.WithTimeout(s.ctx, declareWait)
	defer cancel()
	var refused error // the last INTERNAL_ERROR, when the attempts run out
	err := wait.Poll(ctx, time.Second, "declare the topology", func(context.Context) (bool, error) {
		err := once()
		var amqpErr *amqp.Error
		if errors.As(err, &amqpErr) && amqpErr.Code == amqp.InternalError {
			s.t.Logf("declare the topology: %v; again", err)
			refused = err
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		s.t.Fatalf("%v (last refusal: %v)", err, refused)
	}
}

// declareWait bounds declare's attempts.
const declareWait = 2 * time.Minute

// capture binds a scratch queue to the service's exchange and records
// everything arriving on it.
func (s *Service) capture(ch *amqp.Channel) {
	s.t.Helper()
	scratch, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		s.t.Fatalf("scratch queue: %v", err)
	}
	if err := ch.QueueBind(scratch.Name, "#", outbox.ExchangeName(s.spec.Name), false, nil); err != nil {
		s.t.Fatalf("bind scratch queue: %v", err)
	}
	deliveries, err := ch.Consume(scratch.Name, "", true, true, false, false, nil)
	if err != nil {
		s.t.Fatalf("consume scratch queue: %v", err)
	}
	go func() {
		for d := range deliveries {
			typ := d.Type
			if typ == "" {
				typ = d.RoutingKey // the relay routes by type
			}
			m := outbox.Message{ID: header(d.Headers, outbox.HeaderID), Type: typ, Source: header(d.Headers, outbox.HeaderSource),
				AggregateID: header(d.Headers, outbox.HeaderAggregateID), CorrelationID: header(d.Headers, outbox.HeaderCorrelationID),
				CausationID: header(d.Headers, outbox.HeaderCausationID), Payload: d.Body}
			s.mu.Lock()
			s.events = append(s.events, m)
			s.mu.Unlock()
		}
	}()
}

func header(h amqp.Table, key string) string {
	v, _ := h[key].(string)
	return v
}

// run starts the service on its database and virtual host and waits until
// it listens.
func (s *Service) run() {
	s.t.Helper()
	ctx, cancel := context.WithCancel(s.ctx)
	listening := make(chan string, 1)
	kit := servicekit.Config{DatabaseURL: s.DatabaseURL, AMQPURL: s.AMQPURL, RelayPollInterval: 50 * time.Millisecond,
		OnListen: func(addr string) { listening <- addr }}
	done := make(chan error, 1)
	go func() { done <- s.spec.Run(ctx, kit, logger()) }()
	s.stop = func(t testing.TB) {
		s.stop = func(testing.TB) {}
		// A service that ended before being told to failed, whatever it
		// returned; checked before cancel, after which ctx.Err() is set.
		select {
		case err := <-done:
			t.Errorf("service stopped on its own: %v", err)
			return
		default:
		}
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("service stopped: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("service did not stop within 30s")
		}
	}
	select {
	case addr := <-listening:
		s.BaseURL = "http://" + addr
	case err := <-done:
		s.t.Fatalf("service did not start: %v", err)
	case <-time.After(60 * time.Second):
		s.t.Fatal("service did not listen within 60s")
	}
}

// logger shows the services' warnings, or everything with
// SHOPMESH_TEST_VERBOSE set.
func logger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("SHOPMESH_TEST_VERBOSE") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// Stop stops the service and waits until it has; a stopped service stays
// down until Restart.
func (s *Service) Stop() {
	s.t.Helper()
	s.stop(s.t)
}

// Restart stops the service unless it is stopped, and starts it again on
// the same database and virtual host; its events keep being captured.
func (s *Service) Restart() {
	s.t.Helper()
	s.stop(s.t)
	s.run()
}

// Context lives until the test ends.
func (s *Service) Context() context.Context { return s.ctx }

// InboxQueue is the name of the service's inbox queue.
func (s *Service) InboxQueue() string { return outbox.QueueName(s.spec.Name, s.spec.Consumer) }

// Apply returns cfg changed by each of mods that is not nil: how a test's
// start helper lets a test adjust the service's Config.
func Apply[C any](cfg C, mods ...func(*C)) C {
	for _, mod := range mods {
		if mod != nil {
			mod(&cfg)
		}
	}
	return cfg
}
