// Package gateway is shopmesh's one public HTTP/JSON entry point. It
// authenticates callers (bearer JWTs from the user service), enforces
// per-route access, body-size, rate and time limits, and forwards each
// request with its path unchanged to the service that owns the route,
// adding the caller's identity as X-Shopmesh-* headers. Every error it
// answers is application/problem+json. It also serves the OpenAPI 3.1
// document of the public API at /api/openapi.json.
//
// The gateway holds no state beyond rate-limit buckets and knows no
// service's domain: it must not decode, validate or rewrite request or
// response bodies (services do that), only route, guard and forward.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/shopmesh/shopmesh/internal/auth"
)

// Config configures the gateway. Zero values mean the documented defaults,
// except TokenSecret, which is required.
type Config struct {
	// Addr is the listen address (default 127.0.0.1:8080).
	Addr string
	// Upstreams maps each service to its base URL (scheme and host, no
	// path). Missing services default to DefaultUpstreams.
	Upstreams map[Service]string
	// TokenSecret verifies bearer tokens; the user service signs with the
	// same secret. At least auth.MinSecretLen bytes.
	TokenSecret []byte

	// MaxBodyBytes caps a request body (default 64 KiB); larger ones are
	// answered 413 before anything is forwarded.
	MaxBodyBytes int64
	// RequestTimeout bounds one forwarded request, from forwarding to the
	// end of the response (default 15s); an upstream slower than that is
	// answered 504.
	RequestTimeout time.Duration
	// RateLimit is the sustained requests per second one client may make
	// (default 100), with bursts of up to RateBurst (default 200). A client
	// is its user id when authenticated, else its IP address.
	RateLimit float64
	RateBurst int
	// RateLimitIdle is how long an idle client's bucket is kept (default
	// 10m); it bounds the limiter's memory.
	RateLimitIdle time.Duration
	// DialTimeout bounds connecting to an upstream (default 3s).
	DialTimeout time.Duration
	// ReadyTimeout bounds each upstream's /readyz probe (default 2s).
	ReadyTimeout time.Duration
	// ShutdownTimeout is how long Run waits for in-flight requests when ctx
	// ends (default 10s).
	ShutdownTimeout time.Duration
	// OnListen, when set, is called with the bound address once Run
	// listens (tests and `serve all` use it with port 0).
	OnListen func(addr string)
}

// Defaults.
const (
	DefaultAddr            = "127.0.0.1:8080"
	DefaultMaxBodyBytes    = 64 << 10
	DefaultRequestTimeout  = 15 * time.Second
	DefaultRateLimit       = 100
	DefaultRateBurst       = 200
	DefaultRateLimitIdle   = 10 * time.Minute
	DefaultDialTimeout     = 3 * time.Second
	DefaultReadyTimeout    = 2 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
)

// DefaultUpstreams are the services' default addresses (each service's
// default port).
func DefaultUpstreams() map[Service]string {
	return map[Service]string{
		User:         "http://127.0.0.1:8101",
		Catalog:      "http://127.0.0.1:8102",
		Cart:         "http://127.0.0.1:8103",
		Order:        "http://127.0.0.1:8104",
		Inventory:    "http://127.0.0.1:8105",
		Payment:      "http://127.0.0.1:8106",
		Shipping:     "http://127.0.0.1:8107",
		Invoice:      "http://127.0.0.1:8108",
		Notification: "http://127.0.0.1:8111",
		Customer:     "http://127.0.0.1:8109",
		Loyalty:      "http://127.0.0.1:8110",
		Analytics:    "http://127.0.0.1:8112",
	}
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	ups := DefaultUpstreams()
	for s, u := range c.Upstreams {
		ups[s] = u
	}
	c.Upstreams = ups
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.RateLimit == 0 {
		c.RateLimit = DefaultRateLimit
	}
	if c.RateBurst == 0 {
		c.RateBurst = DefaultRateBurst
	}
	if c.RateLimitIdle == 0 {
		c.RateLimitIdle = DefaultRateLimitIdle
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	return c
}

// Validate reports a configuration that cannot work (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q: %w", c.Addr, err))
	}
	if _, err := auth.NewVerifier(c.TokenSecret); err != nil {
		errs = append(errs, err)
	}
	for _, s := range Services() {
		if _, err := upstreamURL(c.Upstreams[s]); err != nil {
			errs = append(errs, fmt.Errorf("upstream %s: %w", s, err))
		}
	}
	for s := range c.Upstreams {
		if !knownService(s) {
			errs = append(errs, fmt.Errorf("upstream %q: unknown service", s))
		}
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("max body bytes %d: must be positive", c.MaxBodyBytes))
	}
	if c.RateLimit < 0 || c.RateBurst < 0 {
		errs = append(errs, fmt.Errorf("rate limit %g/s burst %d: must be positive", c.RateLimit, c.RateBurst))
	}
	for name, d := range map[string]time.Duration{
		"request timeout": c.RequestTimeout, "rate limit idle": c.RateLimitIdle, "dial timeout": c.DialTimeout,
		"ready timeout": c.ReadyTimeout, "shutdown timeout": c.ShutdownTimeout,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %s: must be positive", name, d))
		}
	}
	return errors.Join(errs...)
}

// LogValue masks the token secret when the configuration is logged.
func (c Config) LogValue() slog.Value {
	ups := make([]slog.Attr, 0, len(c.Upstreams))
	for _, s := range Services() {
		ups = append(ups, slog.String(string(s), c.Upstreams[s]))
	}
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.Attr{Key: "upstreams", Value: slog.GroupValue(ups...)},
		slog.String("token_secret", "***"),
		slog.Int64("max_body_bytes", c.MaxBodyBytes),
		slog.Duration("request_timeout", c.RequestTimeout),
		slog.Float64("rate_limit", c.RateLimit),
		slog.Int("rate_burst", c.RateBurst),
	)
}

func knownService(s Service) bool {
	for _, k := range Services() {
		if s == k {
			return true
		}
	}
	return false
}

// upstreamURL parses a base URL: http or https, a host, and no path beyond
// "/", query or fragment (paths are forwarded unchanged).
func upstreamURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q: no host", raw)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%q: must be a base URL without path, query, fragment or credentials", raw)
	}
	u.Path = ""
	return u, nil
}

// Run serves the gateway on cfg.Addr until ctx ends, then drains in-flight
// requests for at most cfg.ShutdownTimeout.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("gateway config: %w", err)
	}
	cfg = cfg.withDefaults()
	logger = logger.With("service", "gateway")
	h, err := NewHandler(cfg, logger)
	if err != nil {
		return err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("gateway listen: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// A body (at most MaxBodyBytes) is read before forwarding; the write
		// deadline covers that, the upstream and the response.
		ReadTimeout:    30 * time.Second,
		WriteTimeout:   30*time.Second + cfg.RequestTimeout,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	logger.Info("gateway listening", "addr", ln.Addr().String(), "config", cfg)
	if cfg.OnListen != nil {
		cfg.OnListen(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("gateway serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("gateway shutdown: %w", err)
	}
	<-errc
	return nil
}
