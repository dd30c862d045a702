// Package servicekit assembles the parts every shopmesh service runs: its
// database pool and migrations, its outbox and relay, its consumers, outbox
// retention, Prometheus metrics and an HTTP server with health endpoints.
// A service's Run builds its own domain, store and transport and hands them
// to a Node; the Node owns lifetimes and shuts everything down together.
// It must not contain any service's domain logic.
package servicekit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/shopmesh/shopmesh/internal/pgmigrate"
	"github.com/shopmesh/shopmesh/internal/wait"
	"github.com/shopmesh/shopmesh/outbox"
)

// Config is what every service needs from its environment.
type Config struct {
	// Name is the service name: event source, queue prefix, version table.
	Name string
	// DatabaseURL is the service's own database.
	DatabaseURL string
	// AMQPURL is the broker with the service's own credentials.
	AMQPURL string
	// HTTPAddr is where the service's API, /metrics, /healthz and /readyz
	// listen. Empty means 127.0.0.1:0 (a free port; see Node.Addr).
	HTTPAddr string
	// Migrations holds the service's goose SQL files (at the root of the FS).
	Migrations fs.FS
	// Metrics and Registry may be shared by several services in one process
	// (`shopmesh serve all`); when nil, the Node makes its own.
	Metrics  *outbox.Metrics
	Registry *prometheus.Registry
	// Retention of sent outbox rows and inbox keys (defaults: 7 days each).
	Retention outbox.RetentionConfig
	// RelayPollInterval is the relay's safety-net poll (default 500ms).
	RelayPollInterval time.Duration
	// MaxConns bounds the pool (default 10).
	MaxConns int32
	// Consumer, when set, adjusts every consumer of the service after the
	// service's own defaults: the operator's settings (see ConsumerLinger).
	Consumer func(*outbox.ConsumerConfig)
	// OnListen, when set, is called with the HTTP address once the service
	// listens (tests and `serve all` use it to find services on free ports).
	OnListen func(addr string)
	Logger   *slog.Logger
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("service name is required"))
	}
	if c.DatabaseURL == "" {
		errs = append(errs, fmt.Errorf("%s: database URL is required", c.Name))
	}
	if c.AMQPURL == "" {
		errs = append(errs, fmt.Errorf("%s: AMQP URL is required", c.Name))
	}
	return errors.Join(errs...)
}

// MigrationsDir returns the directory "migrations" of fsys, where a service
// embeds its goose SQL files (//go:embed migrations/*.sql), as the FS
// Config.Migrations wants. It panics if fsys has no such directory: the
// files are embedded at compile time, so that is a build defect.
func MigrationsDir(fsys fs.FS) fs.FS {
	sub, err := fs.Sub(fsys, "migrations")
	if err != nil {
		panic(err)
	}
	return sub
}

// ServiceLogger returns the logger a service's Run logs with: logger (a
// discarding one when nil) tagged with c.Name. Unless c has a Logger, it
// also becomes c's, the Node's. Call it once c.Name is set.
func (c *Config) ServiceLogger(logger *slog.Logger) *slog.Logger {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if c.Logger == nil {
		c.Logger = logger
	}
	return logger.With("service", c.Name)
}

// ValidateFor validates c as the configuration of the service name: a Name
// other than name is refused, an empty one is taken as name (the service's
// Run sets it).
func (c Config) ValidateFor(name string) error {
	var errs []error
	if c.Name != "" && c.Name != name {
		errs = append(errs, fmt.Errorf("%s: kit name %q, want %q", name, c.Name, name))
	}
	c.Name = name
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Node is one running service instance.
type Node struct {
	cfg       Config
	Pool      *pgxpool.Pool
	Outbox    *outbox.Outbox
	Metrics   *outbox.Metrics
	Registry  *prometheus.Registry
	Logger    *slog.Logger
	consumers []*outbox.Consumer
	listener  net.Listener
}

// Open connects to the database, applies the outbox's and the service's
// migrations, and binds the HTTP listener. Close the Node if Run is not called.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	logger := cfg.Logger.With("service", cfg.Name)
	poolCfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("%s database URL: %w", cfg.Name, err)
	}
	poolCfg.MaxConns = cfg.MaxConns
	if poolCfg.MaxConns == 0 {
		poolCfg.MaxConns = 10
	}
	poolCfg.ConnConfig.RuntimeParams["application_name"] = "shopmesh-" + cfg.Name
	poolCfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		registerUUIDStrings(conn.TypeMap())
		return nil
	}
	n := &Node{cfg: cfg, Logger: logger, Metrics: cfg.Metrics, Registry: cfg.Registry}
	if n.Registry == nil {
		n.Registry = prometheus.NewRegistry()
		n.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if poolCfg.ConnConfig.Tracer, err = newRoundTrips(n.Registry, cfg.Name); err != nil {
		return nil, err
	}
	if n.Pool, err = pgxpool.NewWithConfig(ctx, poolCfg); err != nil {
		return nil, fmt.Errorf("%s database: %w", cfg.Name, err)
	}
	if err := n.open(ctx); err != nil {
		n.Pool.Close()
		return nil, err
	}
	return n, nil
}

func (n *Node) open(ctx context.Context) error {
	cfg := n.cfg
	if err := waitForDatabase(ctx, n.Pool, n.Logger); err != nil {
		return fmt.Errorf("%s database: %w", cfg.Name, err)
	}
	if err := outbox.Migrate(ctx, n.Pool, n.Logger); err != nil {
		return err
	}
	if cfg.Migrations != nil {
		if err := pgmigrate.Up(ctx, n.Pool, cfg.Migrations, cfg.Name+"_schema_version", n.Logger); err != nil {
			return err
		}
	}
	ob, err := outbox.New(cfg.Name)
	if err != nil {
		return err
	}
	n.Outbox = ob
	if n.Metrics == nil {
		if n.Metrics, err = outbox.NewMetrics(n.Registry); err != nil {
			return err
		}
	}
	addr := cfg.HTTPAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if n.listener, err = net.Listen("tcp", addr); err != nil {
		return fmt.Errorf("%s listen: %w", cfg.Name, err)
	}
	return nil
}

// waitForDatabase retries the first connection for up to 30s, so services
// started together with their database do not fail on its start-up.
func waitForDatabase(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := pool.Ping(ctx)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		logger.Warn("waiting for database", "err", err)
		if err := wait.Sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

// Build assembles a service on an open Node: its store, use cases,
// consumers (see Node.Inbox) and transport. It returns the HTTP API and the
// service's own background components.
type Build func(n *Node) (api http.Handler, extra []Background, err error)

// Serve opens a Node for cfg, assembles the service on it with build, and
// runs it (see Node.Run); if build fails, the Node is closed.
func Serve(ctx context.Context, cfg Config, build Build) error {
	n, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	api, extra, err := build(n)
	if err != nil {
		n.Close()
		return err
	}
	return n.Run(ctx, api, extra...)
}

// Inbox creates the consumer name (mod may adjust its defaults, see
// Consumer) and has register add its handlers, typically with Subscribe.
func (n *Node) Inbox(name string, mod func(*outbox.ConsumerConfig), register func(*outbox.Consumer) error) error {
	c, err := n.Consumer(name, mod)
	if err != nil {
		return err
	}
	return register(c)
}

// SerialBatches sets consumer defaults for a service whose messages mostly
// update rows shared across aggregates (stock levels, a number sequence,
// daily counters): parallel workers would only queue for each other's row
// locks, a commit apart, while one worker that applies whatever has queued,
// up to 64 messages per transaction, takes each lock once per commit. It
// never waits for a batch to fill, so an idle service sees no delay.
func SerialBatches(c *outbox.ConsumerConfig) {
	c.Workers, c.Prefetch, c.MaxBatch = 1, 128, 64
}

// LingeringBatches sets consumer defaults for a service whose effects
// nobody waits on within milliseconds: reports, histories, notifications a
// dispatcher sends on its next pass anyway. They are SerialBatches, and a
// worker that receives a message waits up to DefaultLinger for others to
// share its transaction, so a trickle of events costs a commit per linger
// instead of one per event. An idle service applies a lone event
// DefaultLinger later.
func LingeringBatches(c *outbox.ConsumerConfig) {
	SerialBatches(c)
	c.Linger = DefaultLinger
}

// DefaultLinger is the linger of LingeringBatches.
const DefaultLinger = 100 * time.Millisecond

// ConsumerLinger is an operator's setting of every consumer's linger
// (ConsumerConfig.Linger; 0 never waits), for Config.Consumer.
func ConsumerLinger(d time.Duration) func(*outbox.ConsumerConfig) {
	return func(c *outbox.ConsumerConfig) { c.Linger = d }
}

// Then applies mods in order, skipping nil ones: a service's consumer
// defaults followed by its operator's adjustments.
func Then(mods ...func(*outbox.ConsumerConfig)) func(*outbox.ConsumerConfig) {
	return func(c *outbox.ConsumerConfig) {
		for _, mod := range mods {
			if mod != nil {
				mod(c)
			}
		}
	}
}

// Addr is the address the HTTP server listens on.
func (n *Node) Addr() string { return n.listener.Addr().String() }

// Consumer creates a consumer of this service; register its handlers before
// Run. mod may adjust the defaults.
func (n *Node) Consumer(name string, mod func(*outbox.ConsumerConfig)) (*outbox.Consumer, error) {
	cfg := outbox.ConsumerConfig{
		Service: n.cfg.Name, Name: name, Pool: n.Pool, AMQPURL: n.cfg.AMQPURL,
		Outbox: n.Outbox, Metrics: n.Metrics, Logger: n.Logger,
	}
	if mod != nil {
		mod(&cfg)
	}
	if n.cfg.Consumer != nil {
		n.cfg.Consumer(&cfg)
	}
	c, err := outbox.NewConsumer(cfg)
	if err != nil {
		return nil, err
	}
	n.consumers = append(n.consumers, c)
	return c, nil
}

// Background is a component that runs until ctx ends (a simulator, a sweeper).
type Background func(ctx context.Context) error

// Run serves api (with /metrics, /healthz and /readyz beside it) and runs
// the relay, the consumers, retention and the extra background components
// until ctx ends or one of them fails; then it stops them all and closes
// the pool.
func (n *Node) Run(ctx context.Context, api http.Handler, extra ...Background) error {
	defer n.Pool.Close()
	relay, err := outbox.NewRelay(outbox.RelayConfig{
		Outbox: n.Outbox, Pool: n.Pool, AMQPURL: n.cfg.AMQPURL, PollInterval: n.cfg.RelayPollInterval,
		Metrics: n.Metrics, Logger: n.Logger,
	})
	if err != nil {
		n.listener.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := n.Pool.Ping(r.Context()); err != nil {
			http.Error(w, "database unavailable", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	if api != nil {
		mux.Handle("/", api)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(n.listener); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("%s http: %w", n.cfg.Name, err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 10*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	components := []Background{relay.Run,
		func(ctx context.Context) error {
			return outbox.RunRetention(ctx, n.Pool, withLogger(n.cfg.Retention, n.Logger))
		},
		func(ctx context.Context) error {
			return outbox.RunStatsGauges(ctx, n.Pool, n.cfg.Name, n.Metrics, 5*time.Second)
		},
	}
	for _, c := range n.consumers {
		components = append(components, c.Run)
	}
	components = append(components, extra...)
	for _, run := range components {
		g.Go(func() error {
			if err := run(gctx); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		})
	}
	n.Logger.Info("service started", "http", n.Addr(), "consumers", len(n.consumers))
	if n.cfg.OnListen != nil {
		n.cfg.OnListen(n.Addr())
	}
	err = g.Wait()
	n.Logger.Info("service stopped", "err", err)
	return err
}

// Close releases the Node's resources when Run was never called.
func (n *Node) Close() {
	if n.listener != nil {
		n.listener.Close()
	}
	n.Pool.Close()
}

// ResetReadModel empties a service's read model with reset and forgets
// every message its consumer applied (outbox.ForgetInbox), in one
// transaction, so that replaying history rebuilds the model. It returns
// how many inbox keys it forgot. The service may keep running.
func ResetReadModel(ctx context.Context, pool *pgxpool.Pool, consumer string, reset func(context.Context, pgx.Tx) error) (int64, error) {
	var forgotten int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := reset(ctx, tx); err != nil {
			return err
		}
		var err error
		forgotten, err = outbox.ForgetInbox(ctx, tx, consumer, time.Time{})
		return err
	})
	return forgotten, err
}

func withLogger(c outbox.RetentionConfig, l *slog.Logger) outbox.RetentionConfig {
	if c.Logger == nil {
		c.Logger = l
	}
	return c
}
