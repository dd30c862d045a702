package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/shopmesh/shopmesh/internal/auth"
	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/outbox"
)

// identityPrefix starts every header the gateway vouches for; clients may
// not send any of them.
const identityPrefix = "X-Shopmesh-"

// validRequestID reports whether a client-sent X-Request-Id may be kept:
// 1-128 of A-Za-z0-9._:- starting alphanumeric (it travels into logs and
// event envelopes). Others are replaced.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != ':' && c != '-') {
			return false
		}
	}
	return true
}

// handler is the gateway's http.Handler.
type handler struct {
	cfg      Config
	logger   *slog.Logger
	verifier *auth.Verifier
	router   *router
	proxies  map[Service]*upstream
	limiter  *limiter
	openapi  *document
}

// NewHandler builds the gateway's handler from cfg (defaults applied). It
// starts no goroutines; Run adds the listener and lifecycle.
func NewHandler(cfg Config, logger *slog.Logger) (http.Handler, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	cfg = cfg.withDefaults()
	verifier, err := auth.NewVerifier(cfg.TokenSecret)
	if err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	doc, err := loadDocument()
	if err != nil {
		return nil, err
	}
	h := &handler{
		cfg:      cfg,
		logger:   logger,
		verifier: verifier,
		router:   newRouter(Routes()),
		limiter:  newLimiter(cfg.RateLimit, cfg.RateBurst, cfg.RateLimitIdle),
		openapi:  doc,
	}
	transport := newTransport(cfg)
	h.proxies = make(map[Service]*upstream, len(cfg.Upstreams))
	for s, raw := range cfg.Upstreams {
		u, err := upstreamURL(raw)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", s, err)
		}
		h.proxies[s] = newUpstream(s, u, transport, logger)
	}
	return h, nil
}

// requestState is what the gateway learned about a request, shared by the
// middleware, the proxy and the access log.
type requestState struct {
	requestID string
	route     Route
	userID    string
	role      string
}

type stateKey struct{}

func stateFrom(ctx context.Context) *requestState {
	st, _ := ctx.Value(stateKey{}).(*requestState)
	return st
}

// ServeHTTP: request id, access log and panic recovery around everything;
// then the gateway's own endpoints or the API.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := &requestState{requestID: r.Header.Get(httpkit.HeaderRequestID)}
	if !validRequestID(st.requestID) {
		st.requestID = outbox.NewID()
	}
	r.Header.Set(httpkit.HeaderRequestID, st.requestID)
	w.Header().Set(httpkit.HeaderRequestID, st.requestID)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	rec := &recorder{ResponseWriter: w}

	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.logger.Error("gateway panic", "request_id", st.requestID, "panic", v)
			if !rec.wrote {
				httpkit.WriteProblem(rec, r, httpkit.NewProblem(http.StatusInternalServerError, "internal", "the request could not be completed"))
			}
		}
		h.logRequest(r, st, rec, start)
	}()

	switch r.URL.Path {
	case "/healthz":
		h.local(rec, r, h.healthz)
	case "/readyz":
		h.local(rec, r, h.readyz)
	case "/api/openapi.json":
		h.local(rec, r, h.openapi.serve)
	default:
		h.api(rec, r, st)
	}
}

// local serves one of the gateway's own GET endpoints.
func (h *handler) local(w http.ResponseWriter, r *http.Request, serve http.HandlerFunc) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusMethodNotAllowed, "method-not-allowed", r.Method+" is not allowed here"))
		return
	}
	serve(w, r)
}

// api authenticates, limits, routes and forwards one API request.
func (h *handler) api(w http.ResponseWriter, r *http.Request, st *requestState) {
	claims, authErr := h.authenticate(r)
	if authErr == nil {
		st.userID, st.role = claims.UserID, claims.Role
	}

	// Limit before routing and access checks, so that neither guessing
	// paths nor forging tokens is free.
	key := "ip:" + clientIP(r)
	if st.userID != "" {
		key = "user:" + st.userID
	}
	if ok, retry := h.limiter.allow(key, time.Now()); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
		httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusTooManyRequests, "rate-limited", "too many requests; retry later"))
		return
	}

	route, ok, found, allow := h.router.match(r.Method, r.URL)
	switch {
	case !found:
		httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusNotFound, "not-found", "no such resource"))
		return
	case !ok:
		w.Header().Set("Allow", strings.Join(allow, ", "))
		httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusMethodNotAllowed, "method-not-allowed", r.Method+" is not allowed here"))
		return
	}
	st.route = route

	if route.Access != Public {
		switch {
		case errors.Is(authErr, errNoToken):
			w.Header().Set("WWW-Authenticate", `Bearer realm="shopmesh"`)
			httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusUnauthorized, "unauthenticated", "a bearer token is required"))
			return
		case authErr != nil:
			h.logger.Debug("token rejected", "request_id", st.requestID, "err", authErr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="shopmesh", error="invalid_token"`)
			httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusUnauthorized, "unauthenticated", "the bearer token is invalid or expired"))
			return
		}
	}
	if route.Access == Admin && st.role != auth.RoleAdmin {
		w.Header().Set("WWW-Authenticate", `Bearer realm="shopmesh", error="insufficient_scope"`)
		httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusForbidden, "forbidden", "this operation requires the admin role"))
		return
	}

	if p := h.bufferBody(w, r); p != nil {
		httpkit.WriteProblem(w, r, p)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.RequestTimeout)
	defer cancel()
	h.proxies[route.Service].proxy.ServeHTTP(w, r.WithContext(ctx))
}

var errNoToken = errors.New("no bearer token")

// authenticate verifies the request's bearer token, if any.
func (h *handler) authenticate(r *http.Request) (auth.Claims, error) {
	header := r.Header.Get("Authorization")
	if header == "" {
		return auth.Claims{}, errNoToken
	}
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return auth.Claims{}, fmt.Errorf("%w: authorization scheme is not Bearer", auth.ErrInvalidToken)
	}
	claims, err := h.verifier.Verify(strings.TrimSpace(token), time.Now())
	if err != nil {
		return auth.Claims{}, err
	}
	if !validHeaderValue(claims.UserID) {
		return auth.Claims{}, fmt.Errorf("%w: subject is not a valid id", auth.ErrInvalidToken)
	}
	return claims, nil
}

// validHeaderValue accepts what can safely travel as an identity header.
func validHeaderValue(s string) bool {
	if s == "" || len(s) > maxSegment {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// bufferBody reads the request body, at most MaxBodyBytes, before anything
// is forwarded: an oversized body is refused with 413 whether or not it
// declared its length, and a service never sees half a body. Bodies are
// small, so holding them costs little.
func (h *handler) bufferBody(w http.ResponseWriter, r *http.Request) *httpkit.Problem {
	tooLarge := httpkit.NewProblem(http.StatusRequestEntityTooLarge, "body-too-large",
		fmt.Sprintf("the body exceeds %d bytes", h.cfg.MaxBodyBytes))
	if r.ContentLength > h.cfg.MaxBodyBytes {
		w.Header().Set("Connection", "close")
		return tooLarge
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return tooLarge
		}
		return httpkit.NewProblem(http.StatusBadRequest, "unreadable-body", "the body could not be read")
	}
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	if len(body) == 0 {
		r.Body = http.NoBody
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return nil
}

// clientIP is the peer's address, IPv6 reduced to its /64 (one host
// usually holds a whole /64, so a single address would be too cheap to
// rotate). The gateway is the edge: it does not trust X-Forwarded-For.
func clientIP(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	addr := ap.Addr().Unmap()
	if addr.Is6() {
		if p, err := addr.Prefix(64); err == nil {
			return p.String()
		}
	}
	return addr.String()
}

func (h *handler) logRequest(r *http.Request, st *requestState, rec *recorder, start time.Time) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int64("bytes", rec.bytes),
		slog.Duration("duration", time.Now().Sub(start)),
		slog.String("request_id", st.requestID),
	}
	if st.route.Pattern != "" {
		attrs = append(attrs, slog.String("route", st.route.Pattern), slog.String("upstream", string(st.route.Service)))
	}
	if st.userID != "" {
		attrs = append(attrs, slog.String("user_id", st.userID))
	}
	h.logger.LogAttrs(r.Context(), level, "request", attrs...)
}

// recorder notes the status and size of a response for the access log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (w *recorder) WriteHeader(code int) {
	if !w.wrote && code >= 200 { // 1xx are interim, the final status follows
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController (used by the reverse proxy to flush)
// reach the underlying writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
