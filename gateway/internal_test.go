package gateway

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestClientIP(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ remote, want string }{
		{"192.0.2.7:5555", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:5555", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::/64"},
		{"not-an-address", "not-an-address"},
	} {
		if got := clientIP(&http.Request{RemoteAddr: tt.remote}); got != tt.want {
			t.Errorf("clientIP(%q) = %q, want %q", tt.remote, got, tt.want)
		}
	}
}

func TestLimiterRefillsAndForgetsIdleClients(t *testing.T) {
	t.Parallel()
	l := newLimiter(1, 1, time.Minute)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if ok, _ := l.allow("a", now); !ok {
		t.Fatal("first request refused")
	}
	ok, retry := l.allow("a", now)
	if ok || retry != time.Second {
		t.Errorf("second request: allowed %v, retry %s; want refused, retry 1s", ok, retry)
	}
	if ok, _ := l.allow("a", now.Add(time.Second)); !ok {
		t.Error("refused after the bucket refilled")
	}
	l.allow("b", now.Add(2*time.Minute)) // sweeps "a", idle for over a minute
	if _, kept := l.clients["a"]; kept {
		t.Error("idle client kept after the sweep")
	}
	if len(l.clients) != 1 {
		t.Errorf("%d clients tracked, want 1", len(l.clients))
	}
}

func TestRouterPrefersStaticSegments(t *testing.T) {
	t.Parallel()
	rt := newRouter([]Route{
		{http.MethodGet, "/a/{id}", Catalog, Public},
		{http.MethodGet, "/a/special", Order, Public},
	})
	for path, want := range map[string]Service{"/a/special": Order, "/a/other": Catalog} {
		r, ok, _, _ := rt.match(http.MethodGet, &url.URL{Path: path})
		if !ok || r.Service != want {
			t.Errorf("%s -> %v (ok %v), want %s", path, r.Service, ok, want)
		}
	}
}
