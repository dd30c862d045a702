package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/gateway"
	"github.com/shopmesh/shopmesh/internal/auth"
	"github.com/shopmesh/shopmesh/internal/httpkit"
)

var secret = []byte("gateway-test-secret-0123456789abcdef")

// echo is what a fake service received, as it reports it back.
type echo struct {
	Service  string      `json:"service"`
	Method   string      `json:"method"`
	Path     string      `json:"path"`
	RawPath  string      `json:"raw_path"`
	RawQuery string      `json:"raw_query"`
	Header   http.Header `json:"header"`
	Body     string      `json:"body"`
}

// fakes are one echoing httptest server per service.
type fakes struct {
	urls map[gateway.Service]string
	hits atomic.Int64
}

func newFakes(t *testing.T) *fakes {
	t.Helper()
	f := &fakes{urls: map[gateway.Service]string{}}
	for _, s := range gateway.Services() {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/readyz" {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			f.hits.Add(1)
			body, _ := io.ReadAll(r.Body)
			httpkit.WriteJSON(w, http.StatusOK, echo{
				Service: string(s), Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath,
				RawQuery: r.URL.RawQuery, Header: r.Header, Body: string(body),
			})
		}))
		t.Cleanup(srv.Close)
		f.urls[s] = srv.URL
	}
	return f
}

// newGateway serves a gateway in front of f, with cfg adjusted by mod.
func newGateway(t *testing.T, f *fakes, mod func(*gateway.Config)) *httptest.Server {
	t.Helper()
	cfg := gateway.Config{Upstreams: f.urls, TokenSecret: secret}
	if mod != nil {
		mod(&cfg)
	}
	h, err := gateway.NewHandler(cfg, nil)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func token(t *testing.T, userID, role string, now time.Time) string {
	t.Helper()
	iss, err := auth.NewIssuer(secret, time.Hour)
	if err != nil {
		t.Fatalf("NewIssuer: %v", err)
	}
	tok, _, err := iss.Issue(userID, role, now)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return tok
}

type call struct {
	method, path, token, body string
	header                    map[string]string
}

func do(t *testing.T, srv *httptest.Server, c call) *http.Response {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, srv.URL+c.path, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	return send(t, srv, req)
}

func send(t *testing.T, srv *httptest.Server, req *http.Request) *http.Response {
	t.Helper()
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func decodeEcho(t *testing.T, resp *http.Response) echo {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status = %d (%s), want 200 from the fake service", resp.StatusCode, b)
	}
	var e echo
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("decode echo: %v", err)
	}
	return e
}

// wantProblem checks resp is a problem+json with status.
func wantProblem(t *testing.T, resp *http.Response, status int) httpkit.Problem {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("status = %d (%s), want %d", resp.StatusCode, body, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	checkDocumented(t, body)
	var p httpkit.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body %q: %v", body, err)
	}
	if p.Status != status || p.Type == "" || p.Title == "" {
		t.Errorf("problem = %+v, want status %d with type and title", p, status)
	}
	if resp.Header.Get(httpkit.HeaderRequestID) == "" {
		t.Errorf("problem without %s", httpkit.HeaderRequestID)
	}
	return p
}

// concrete fills a route pattern's parameters.
func concrete(pattern string) string {
	r := strings.NewReplacer("{id}", "0190f3c2-7a8e-7cc1-9a4e-2f1b5d0c9e11", "{product_id}", "0190f3c2-7a8e-7cc1-9a4e-2f1b5d0c9e22")
	return r.Replace(pattern)
}

// TestRouteTable pins the route table to the public API as specified, so a
// slip in Routes() cannot pass unnoticed.
func TestRouteTable(t *testing.T) {
	t.Parallel()
	want := map[string]gateway.Service{
		"POST /api/v1/auth/register":               gateway.User,
		"POST /api/v1/auth/login":                  gateway.User,
		"GET /api/v1/me/address":                   gateway.User,
		"PUT /api/v1/me/address":                   gateway.User,
		"POST /api/v1/admin/users/{id}/deactivate": gateway.User,
		"GET /api/v1/products":                     gateway.Catalog,
		"GET /api/v1/products/{id}":                gateway.Catalog,
		"POST /api/v1/admin/products":              gateway.Catalog,
		"PATCH /api/v1/admin/products/{id}":        gateway.Catalog,
		"POST /api/v1/admin/products/{id}/stock":   gateway.Inventory,
		"GET /api/v1/admin/products/{id}/stock":    gateway.Inventory,
		"GET /api/v1/cart":                         gateway.Cart,
		"PUT /api/v1/cart/items/{product_id}":      gateway.Cart,
		"DELETE /api/v1/cart/items/{product_id}":   gateway.Cart,
		"POST /api/v1/cart/checkout":               gateway.Cart,
		"GET /api/v1/orders":                       gateway.Order,
		"GET /api/v1/orders/{id}":                  gateway.Order,
		"POST /api/v1/orders/{id}/cancel":          gateway.Order,
		"GET /api/v1/orders/{id}/payment":          gateway.Payment,
		"GET /api/v1/orders/{id}/shipment":         gateway.Shipping,
		"GET /api/v1/orders/{id}/invoice":          gateway.Invoice,
		"GET /api/v1/notifications":                gateway.Notification,
		"GET /api/v1/me":                           gateway.Customer,
		"GET /api/v1/me/history":                   gateway.Customer,
		"GET /api/v1/me/points":                    gateway.Loyalty,
		"GET /api/v1/admin/reports/sales":          gateway.Analytics,
		"GET /api/v1/admin/reports/funnel":         gateway.Analytics,
	}
	public := map[string]bool{
		"POST /api/v1/auth/register": true, "POST /api/v1/auth/login": true,
		"GET /api/v1/products": true, "GET /api/v1/products/{id}": true,
	}
	got := map[string]bool{}
	for _, r := range gateway.Routes() {
		key := r.Method + " " + r.Pattern
		if got[key] {
			t.Errorf("%s routed twice", key)
		}
		got[key] = true
		svc, ok := want[key]
		if !ok {
			t.Errorf("%s is routed but not part of the public API", key)
			continue
		}
		if r.Service != svc {
			t.Errorf("%s -> %s, want %s", key, r.Service, svc)
		}
		wantAccess := gateway.Authenticated
		switch {
		case public[key]:
			wantAccess = gateway.Public
		case strings.HasPrefix(r.Pattern, "/api/v1/admin/"):
			wantAccess = gateway.Admin
		}
		if r.Access != wantAccess {
			t.Errorf("%s access = %s, want %s", key, r.Access, wantAccess)
		}
	}
	for key := range want {
		if !got[key] {
			t.Errorf("%s is not routed", key)
		}
	}
}

func TestEveryRouteReachesItsServiceWithPathUnchanged(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	srv := newGateway(t, f, nil)
	now := time.Now()
	for _, r := range gateway.Routes() {
		t.Run(r.Method+" "+r.Pattern, func(t *testing.T) {
			c := call{method: r.Method, path: concrete(r.Pattern) + "?q=red+shoes&limit=5"}
			switch r.Access {
			case gateway.Authenticated:
				c.token = token(t, "u-1", auth.RoleCustomer, now)
			case gateway.Admin:
				c.token = token(t, "u-admin", auth.RoleAdmin, now)
			}
			if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
				c.body = `{"quantity": 2}`
			}
			e := decodeEcho(t, do(t, srv, c))
			if e.Service != string(r.Service) {
				t.Errorf("served by %s, want %s", e.Service, r.Service)
			}
			if e.Method != r.Method {
				t.Errorf("method = %s, want %s", e.Method, r.Method)
			}
			if want := concrete(r.Pattern); e.Path != want {
				t.Errorf("path = %q, want %q", e.Path, want)
			}
			if e.RawQuery != "q=red+shoes&limit=5" {
				t.Errorf("query = %q, want it unchanged", e.RawQuery)
			}
			if e.Body != c.body {
				t.Errorf("body = %q, want %q", e.Body, c.body)
			}
		})
	}
}

func TestPathIsForwardedEscapedAsSent(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	srv := newGateway(t, f, nil)
	e := decodeEcho(t, do(t, srv, call{method: "GET", path: "/api/v1/products/a~b_c.d-e"}))
	if e.Path != "/api/v1/products/a~b_c.d-e" {
		t.Errorf("path = %q", e.Path)
	}
}

func TestIdentityHeadersAreStrippedAndSet(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	srv := newGateway(t, f, nil)
	forged := map[string]string{
		"X-Shopmesh-User-Id":   "someone-else",
		"X-Shopmesh-User-Role": "admin",
		"x-shopmesh-anything":  "x",
		"X-Forwarded-For":      "10.9.9.9",
		"Forwarded":            "for=10.9.9.9",
	}

	t.Run("authenticated", func(t *testing.T) {
		e := decodeEcho(t, do(t, srv, call{method: "GET", path: "/api/v1/cart",
			token: token(t, "u-42", auth.RoleCustomer, time.Now()), header: forged}))
		if got := e.Header.Get(httpkit.HeaderUserID); got != "u-42" {
			t.Errorf("%s = %q, want u-42", httpkit.HeaderUserID, got)
		}
		if got := e.Header.Values(httpkit.HeaderUserRole); len(got) != 1 || got[0] != "customer" {
			t.Errorf("%s = %q, want [customer]", httpkit.HeaderUserRole, got)
		}
		if got := e.Header.Get("X-Shopmesh-Anything"); got != "" {
			t.Errorf("X-Shopmesh-Anything = %q, want it stripped", got)
		}
		if got := e.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
			t.Errorf("X-Forwarded-For = %q, want the gateway's own view of the client", got)
		}
		if got := e.Header.Get("Forwarded"); got != "" {
			t.Errorf("Forwarded = %q, want it stripped", got)
		}
		if got := e.Header.Get("Authorization"); got != "" {
			t.Errorf("Authorization = %q, want the token kept at the gateway", got)
		}
	})

	t.Run("public without token", func(t *testing.T) {
		e := decodeEcho(t, do(t, srv, call{method: "GET", path: "/api/v1/products", header: forged}))
		for k := range e.Header {
			if strings.HasPrefix(k, "X-Shopmesh-") {
				t.Errorf("upstream received %s: %q", k, e.Header.Values(k))
			}
		}
	})

	t.Run("public with invalid token is anonymous", func(t *testing.T) {
		e := decodeEcho(t, do(t, srv, call{method: "GET", path: "/api/v1/products", token: "not.a.token", header: forged}))
		if got := e.Header.Get(httpkit.HeaderUserID); got != "" {
			t.Errorf("%s = %q, want none", httpkit.HeaderUserID, got)
		}
	})

	t.Run("public with valid token identifies the caller", func(t *testing.T) {
		e := decodeEcho(t, do(t, srv, call{method: "GET", path: "/api/v1/products/p1",
			token: token(t, "u-7", auth.RoleAdmin, time.Now())}))
		if e.Header.Get(httpkit.HeaderUserID) != "u-7" || e.Header.Get(httpkit.HeaderUserRole) != "admin" {
			t.Errorf("identity = %q/%q, want u-7/admin", e.Header.Get(httpkit.HeaderUserID), e.Header.Get(httpkit.HeaderUserRole))
		}
	})
}

// jwtPart encodes one JWT segment.
func jwtPart(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestUnauthenticated(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	srv := newGateway(t, f, nil)
	now := time.Now()
	valid := token(t, "u-1", auth.RoleCustomer, now)
	parts := strings.Split(valid, ".")

	otherIssuer, err := auth.NewIssuer([]byte("another-secret-another-secret-0123"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	forged, _, err := otherIssuer.Issue("u-1", auth.RoleAdmin, now)
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{
		"iss": auth.IssuerName, "aud": []string{auth.Audience}, "sub": "u-1", "role": "admin",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
	}
	noneAlg := jwtPart(map[string]string{"alg": "none", "typ": "JWT"}) + "." + jwtPart(claims) + "."
	tampered := parts[0] + "." + jwtPart(claims) + "." + parts[2]

	tests := []struct {
		name, authorization string
		wantInvalid         bool
	}{
		{"missing", "", false},
		{"empty bearer", "Bearer ", true},
		{"basic scheme", "Basic dXNlcjpwYXNz", true},
		{"garbage", "Bearer garbage", true},
		{"forged signature", "Bearer " + forged, true},
		{"expired", "Bearer " + token(t, "u-1", auth.RoleCustomer, now.Add(-2*time.Hour)), true},
		{"alg none", "Bearer " + noneAlg, true},
		{"tampered claims", "Bearer " + tampered, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/api/v1/cart", "/api/v1/admin/products"} {
				method := "GET"
				if strings.Contains(path, "admin") {
					method = "POST"
				}
				req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(`{}`))
				if tt.authorization != "" {
					req.Header.Set("Authorization", tt.authorization)
				}
				resp := send(t, srv, req)
				wantProblem(t, resp, http.StatusUnauthorized)
				wa := resp.Header.Get("WWW-Authenticate")
				if !strings.HasPrefix(wa, "Bearer ") {
					t.Errorf("WWW-Authenticate = %q, want Bearer", wa)
				}
				if got := strings.Contains(wa, `error="invalid_token"`); got != tt.wantInvalid {
					t.Errorf("WWW-Authenticate = %q, want invalid_token %v", wa, tt.wantInvalid)
				}
			}
		})
	}
	if n := f.hits.Load(); n != 0 {
		t.Errorf("services were called %d times for unauthenticated requests", n)
	}
	// The valid token works, so the failures above are the token's.
	decodeEcho(t, do(t, srv, call{method: "GET", path: "/api/v1/cart", token: valid}))
}

func TestAdminRoutesForbidCustomers(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	srv := newGateway(t, f, nil)
	customer := token(t, "u-1", auth.RoleCustomer, time.Now())
	n := 0
	for _, r := range gateway.Routes() {
		if r.Access != gateway.Admin {
			continue
		}
		n++
		resp := do(t, srv, call{method: r.Method, path: concrete(r.Pattern), token: customer, body: `{"adjust": 5}`})
		wantProblem(t, resp, http.StatusForbidden)
	}
	if n == 0 {
		t.Fatal("no admin routes")
	}
	if hits := f.hits.Load(); hits != 0 {
		t.Errorf("services were called %d times for forbidden requests", hits)
	}
}

// chunked hides its length, so the client sends Transfer-Encoding: chunked.
type chunked struct{ r io.Reader }

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	srv := newGateway(t, f, func(c *gateway.Config) { c.MaxBodyBytes = 1024 })
	tok := token(t, "u-1", auth.RoleCustomer, time.Now())
	body := func(n int) []byte {
		return append(append([]byte(`{"x":"`), bytes.Repeat([]byte("a"), n-8)...), '"', '}')
	}

	for _, tt := range []struct {
		name       string
		size       int
		chunked    bool
		wantStatus int
	}{
		{"at the limit with length", 1024, false, http.StatusOK},
		{"at the limit chunked", 1024, true, http.StatusOK},
		{"over with length", 1025, false, http.StatusRequestEntityTooLarge},
		{"over chunked", 1025, true, http.StatusRequestEntityTooLarge},
		{"far over chunked", 200 << 10, true, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := body(tt.size)
			var r io.Reader = bytes.NewReader(b)
			if tt.chunked {
				r = chunked{r}
			}
			req, _ := http.NewRequest("PUT", srv.URL+"/api/v1/cart/items/p1", r)
			req.Header.Set("Authorization", "Bearer "+tok)
			if tt.chunked && req.ContentLength != 0 {
				t.Fatalf("ContentLength = %d, want unknown", req.ContentLength)
			}
			resp := send(t, srv, req)
			if tt.wantStatus != http.StatusOK {
				wantProblem(t, resp, tt.wantStatus)
				return
			}
			e := decodeEcho(t, resp)
			if len(e.Body) != tt.size {
				t.Errorf("service received %d bytes, want %d", len(e.Body), tt.size)
			}
		})
	}
	if hits := f.hits.Load(); hits != 2 {
		t.Errorf("services were called %d times, want 2 (only for bodies within the limit)", hits)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	srv := newGateway(t, f, func(c *gateway.Config) { c.RateLimit = 0.01; c.RateBurst = 2 })
	now := time.Now()
	alice, bob := token(t, "alice", auth.RoleCustomer, now), token(t, "bob", auth.RoleCustomer, now)

	for i := range 2 {
		if resp := do(t, srv, call{method: "GET", path: "/api/v1/cart", token: alice}); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status %d, want 200 within the burst", i, resp.StatusCode)
		}
	}
	resp := do(t, srv, call{method: "GET", path: "/api/v1/cart", token: alice})
	wantProblem(t, resp, http.StatusTooManyRequests)
	retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || retry < 1 {
		t.Errorf("Retry-After = %q, want a positive number of seconds", resp.Header.Get("Retry-After"))
	}

	// Another user from the same address has a bucket of their own.
	if resp := do(t, srv, call{method: "GET", path: "/api/v1/cart", token: bob}); resp.StatusCode != http.StatusOK {
		t.Errorf("bob: status %d, want 200", resp.StatusCode)
	}
	// Anonymous callers are limited by address, separately from users.
	for i := range 2 {
		if resp := do(t, srv, call{method: "GET", path: "/api/v1/products"}); resp.StatusCode != http.StatusOK {
			t.Fatalf("anonymous %d: status %d, want 200", i, resp.StatusCode)
		}
	}
	wantProblem(t, do(t, srv, call{method: "GET", path: "/api/v1/products"}), http.StatusTooManyRequests)
	// A forged token does not buy a fresh bucket.
	wantProblem(t, do(t, srv, call{method: "GET", path: "/api/v1/cart", token: "forged"}), http.StatusTooManyRequests)
}

func TestUnknownRouteAndWrongMethod(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	srv := newGateway(t, f, nil)
	tok := token(t, "u-1", auth.RoleAdmin, time.Now())
	for _, path := range []string{
		"/", "/api/v1/nope", "/api/v1/products/", "/api/v1/products/p1/extra", "/api/v1//products",
		"/api/v1/orders/..%2Fadmin", "/api/v1/orders/%2e%2e", "/api/v1/products/a%20b", "/metrics",
		"/api/v1/cart/items", "/api/v2/cart",
	} {
		req, err := http.NewRequest("GET", srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		t.Run(path, func(t *testing.T) { wantProblem(t, send(t, srv, req), http.StatusNotFound) })
	}
	for _, tt := range []struct{ method, path, allow string }{
		{"DELETE", "/api/v1/products", "GET, HEAD"},
		{"POST", "/api/v1/products/p1", "GET, HEAD"},
		{"GET", "/api/v1/cart/items/p1", "DELETE, PUT"},
		{"GET", "/api/v1/admin/products/p1", "PATCH"},
		{"PUT", "/api/v1/admin/products/p1/stock", "GET, HEAD, POST"},
		{"POST", "/api/openapi.json", "GET, HEAD"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp := do(t, srv, call{method: tt.method, path: tt.path, token: tok})
			wantProblem(t, resp, http.StatusMethodNotAllowed)
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
		})
	}
	if hits := f.hits.Load(); hits != 0 {
		t.Errorf("services were called %d times", hits)
	}
}

// closedURL is an address nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func TestUpstreamDown(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	srv := newGateway(t, f, func(c *gateway.Config) {
		c.Upstreams = map[gateway.Service]string{}
		for s, u := range f.urls {
			c.Upstreams[s] = u
		}
		c.Upstreams[gateway.Catalog] = closedURL(t)
	})
	wantProblem(t, do(t, srv, call{method: "GET", path: "/api/v1/products"}), http.StatusBadGateway)
	// Other services are unaffected.
	decodeEcho(t, do(t, srv, call{method: "POST", path: "/api/v1/auth/login", body: `{}`}))

	resp := do(t, srv, call{method: "GET", path: "/readyz"})
	p := wantProblem(t, resp, http.StatusServiceUnavailable)
	if !strings.Contains(p.Detail, "catalog") {
		t.Errorf("readyz detail = %q, want it to name catalog", p.Detail)
	}
}

func TestUpstreamTimeout(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	srv := newGateway(t, f, func(c *gateway.Config) {
		c.Upstreams = map[gateway.Service]string{gateway.Notification: slow.URL}
		for s, u := range f.urls {
			if s != gateway.Notification {
				c.Upstreams[s] = u
			}
		}
		c.RequestTimeout = 200 * time.Millisecond
	})
	start := time.Now()
	wantProblem(t, do(t, srv, call{method: "GET", path: "/api/v1/notifications", token: token(t, "u-1", auth.RoleCustomer, time.Now())}),
		http.StatusGatewayTimeout)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timed out after %s, want about 200ms", d)
	}
}

func TestUpstreamErrorsAreProblems(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/products/problem" {
			httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusNotFound, "product-not-found", "no such product"))
			return
		}
		http.NotFound(w, r) // text/plain
	}))
	t.Cleanup(plain.Close)
	srv := newGateway(t, f, func(c *gateway.Config) {
		c.Upstreams = map[gateway.Service]string{gateway.Catalog: plain.URL}
	})
	p := wantProblem(t, do(t, srv, call{method: "GET", path: "/api/v1/products/x"}), http.StatusNotFound)
	if p.Instance != "/api/v1/products/x" {
		t.Errorf("instance = %q", p.Instance)
	}
	p = wantProblem(t, do(t, srv, call{method: "GET", path: "/api/v1/products/problem"}), http.StatusNotFound)
	if p.Type != "https://shopmesh.dev/problems/product-not-found" || p.Detail != "no such product" {
		t.Errorf("service problem altered: %+v", p)
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	srv := newGateway(t, f, nil)

	t.Run("generated when absent", func(t *testing.T) {
		resp := do(t, srv, call{method: "GET", path: "/api/v1/products"})
		id := resp.Header.Get(httpkit.HeaderRequestID)
		e := decodeEcho(t, resp)
		if id == "" || e.Header.Get(httpkit.HeaderRequestID) != id {
			t.Errorf("response id %q, forwarded %q: want the same generated id", id, e.Header.Get(httpkit.HeaderRequestID))
		}
		if got := resp.Header.Values(httpkit.HeaderRequestID); len(got) != 1 {
			t.Errorf("response carries %d request ids, want 1", len(got))
		}
	})
	t.Run("kept when valid", func(t *testing.T) {
		resp := do(t, srv, call{method: "GET", path: "/api/v1/products", header: map[string]string{httpkit.HeaderRequestID: "req-123.abc:9"}})
		e := decodeEcho(t, resp)
		if resp.Header.Get(httpkit.HeaderRequestID) != "req-123.abc:9" || e.Header.Get(httpkit.HeaderRequestID) != "req-123.abc:9" {
			t.Errorf("response %q, forwarded %q, want req-123.abc:9", resp.Header.Get(httpkit.HeaderRequestID), e.Header.Get(httpkit.HeaderRequestID))
		}
	})
	for _, bad := range []string{"has space", "-leading", strings.Repeat("a", 129), "quote\"d", "ünïcode"} {
		t.Run("replaced when "+bad, func(t *testing.T) {
			resp := do(t, srv, call{method: "GET", path: "/api/v1/products", header: map[string]string{httpkit.HeaderRequestID: bad}})
			id := resp.Header.Get(httpkit.HeaderRequestID)
			e := decodeEcho(t, resp)
			if id == bad || id == "" || e.Header.Get(httpkit.HeaderRequestID) != id {
				t.Errorf("response id %q, forwarded %q: want a fresh id for %q", id, e.Header.Get(httpkit.HeaderRequestID), bad)
			}
		})
	}
	t.Run("on gateway errors", func(t *testing.T) {
		resp := do(t, srv, call{method: "GET", path: "/nope", header: map[string]string{httpkit.HeaderRequestID: "err-1"}})
		wantProblem(t, resp, http.StatusNotFound)
		if got := resp.Header.Get(httpkit.HeaderRequestID); got != "err-1" {
			t.Errorf("request id = %q, want err-1", got)
		}
	})
}

func TestHealth(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	srv := newGateway(t, f, nil)
	for _, path := range []string{"/healthz", "/readyz"} {
		if resp := do(t, srv, call{method: "GET", path: path}); resp.StatusCode != http.StatusNoContent {
			t.Errorf("%s: status %d, want 204", path, resp.StatusCode)
		}
	}
}

func TestOpenAPIIsServed(t *testing.T) {
	t.Parallel()
	srv := newGateway(t, newFakes(t), nil)
	resp := do(t, srv, call{method: "GET", path: "/api/openapi.json"})
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if !bytes.Equal(body, gateway.OpenAPI()) {
		t.Error("served document differs from gateway.OpenAPI()")
	}
	etag := resp.Header.Get("ETag")
	resp = do(t, srv, call{method: "GET", path: "/api/openapi.json", header: map[string]string{"If-None-Match": etag}})
	if etag == "" || resp.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET with ETag %q: status %d, want 304", etag, resp.StatusCode)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		cfg     gateway.Config
		wantErr bool
	}{
		{"defaults with secret", gateway.Config{TokenSecret: secret}, false},
		{"no secret", gateway.Config{}, true},
		{"short secret", gateway.Config{TokenSecret: []byte("short")}, true},
		{"bad addr", gateway.Config{TokenSecret: secret, Addr: "nope"}, true},
		{"upstream with path", gateway.Config{TokenSecret: secret, Upstreams: map[gateway.Service]string{gateway.Cart: "http://h:1/base"}}, true},
		{"upstream without scheme", gateway.Config{TokenSecret: secret, Upstreams: map[gateway.Service]string{gateway.Cart: "h:1"}}, true},
		{"unknown service", gateway.Config{TokenSecret: secret, Upstreams: map[gateway.Service]string{"warehouse": "http://h:1"}}, true},
		{"negative limit", gateway.Config{TokenSecret: secret, MaxBodyBytes: -1}, true},
		{"negative timeout", gateway.Config{TokenSecret: secret, RequestTimeout: -time.Second}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- gateway.Run(ctx, gateway.Config{
			Addr: "127.0.0.1:0", Upstreams: f.urls, TokenSecret: secret,
			OnListen: func(a string) { addrc <- a },
		}, nil)
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-errc:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not listen within 10s")
	}
	resp, err := http.Get("http://" + addr + "/api/v1/products")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want 200", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run() = %v, want nil after cancel", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of cancel")
	}
}
