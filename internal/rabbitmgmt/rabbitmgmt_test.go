package rabbitmgmt

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestOnlyNodePIDWaitsForANewNodesFirstStatistics(t *testing.T) {
	for _, tc := range []struct {
		name      string
		nodes     []Node
		pid       int
		known, ok bool
	}{
		{name: "reported", nodes: []Node{{Name: "n@h", OSPid: "4242"}}, pid: 4242, known: true, ok: true},
		{name: "not yet reported", nodes: []Node{{Name: "n@h"}}, ok: true},
		{name: "not a number", nodes: []Node{{Name: "n@h", OSPid: "x1"}}},
		{name: "no node", nodes: nil},
		{name: "two nodes", nodes: []Node{{Name: "a@h", OSPid: "1"}, {Name: "b@h", OSPid: "2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pid, known, err := onlyNodePID(tc.nodes)
			if pid != tc.pid || known != tc.known || (err == nil) != tc.ok {
				t.Errorf("onlyNodePID = %d, %v, %v; want %d, %v, error %v", pid, known, err, tc.pid, tc.known, !tc.ok)
			}
		})
	}
}

// fakeAPI answers each request with the next of answers (a status, 0 to
// hang past the client's timeout, or -1 to drop the connection unanswered),
// then 204s, and counts requests.
type fakeAPI struct {
	answers  []int
	requests atomic.Int32
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := int(f.requests.Add(1))
	if n <= len(f.answers) {
		code := f.answers[n-1]
		if code == 0 {
			<-r.Context().Done() // the client gave up
			return
		}
		if code == -1 {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = conn.Close()
			}
			return
		}
		http.Error(w, "answer "+strconv.Itoa(code), code)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// client returns a Client of url whose pauses between retries are recorded
// instead of slept, ending the retries after maxSleeps.
func client(t *testing.T, base string, maxSleeps int) (*Client, *[]time.Duration) {
	t.Helper()
	m, err := New(strings.Replace(base, "://", "://u:p@", 1))
	if err != nil {
		t.Fatal(err)
	}
	m.http.Timeout = 200 * time.Millisecond
	var sleeps []time.Duration
	m.sleep = func(_ context.Context, d time.Duration) error {
		sleeps = append(sleeps, d)
		if len(sleeps) > maxSleeps {
			return context.DeadlineExceeded
		}
		return nil
	}
	return m, &sleeps
}

func TestDoSendsAnIdempotentRequestAgainAfterATransientFailure(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answers []int
		method  string
	}{
		{name: "busy node", answers: []int{503, 500}, method: http.MethodPut},
		{name: "answer later than the timeout", answers: []int{0}, method: http.MethodDelete},
		{name: "both", answers: []int{0, 503, 0}, method: http.MethodGet},
		{name: "connection lost", answers: []int{-1}, method: http.MethodPut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeAPI{answers: tc.answers}
			srv := httptest.NewServer(api)
			defer srv.Close()
			m, sleeps := client(t, srv.URL, 10)
			if err := m.Do(context.Background(), tc.method, "/api/vhosts/v", nil, nil); err != nil {
				t.Fatalf("Do = %v, want success after %d failures", err, len(tc.answers))
			}
			if got, want := int(api.requests.Load()), len(tc.answers)+1; got != want {
				t.Errorf("%d requests, want %d", got, want)
			}
			want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second}[:len(tc.answers)]
			if !slices.Equal(*sleeps, want) {
				t.Errorf("paused %v between attempts, want %v", *sleeps, want)
			}
		})
	}
}

func TestDoReportsWhatRetryingCannotMend(t *testing.T) {
	refused := httptest.NewServer(http.NotFoundHandler())
	refusedURL := refused.URL
	refused.Close() // nothing listens there any more
	for _, tc := range []struct {
		name     string
		answers  []int
		method   string
		url      string
		tls      bool // speak https to the plain fake
		requests int
		check    func(error) bool
	}{
		{name: "client error", answers: []int{400}, method: http.MethodPut, requests: 1,
			check: func(err error) bool { var se *StatusError; return errors.As(err, &se) && se.Code == 400 }},
		{name: "not found", answers: []int{404}, method: http.MethodDelete, requests: 1,
			check: func(err error) bool { return errors.Is(err, ErrNotFound) }},
		{name: "not idempotent", answers: []int{503}, method: http.MethodPost, requests: 1,
			check: func(err error) bool { var se *StatusError; return errors.As(err, &se) && se.Code == 503 }},
		{name: "refused connection", method: http.MethodGet, url: refusedURL,
			check: func(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }},
		{name: "TLS to a plain port", method: http.MethodGet, tls: true,
			check: func(err error) bool { var ue *url.Error; return errors.As(err, &ue) && !ue.Timeout() }},
		{name: "retries run out", answers: []int{503, 503, 503, 503, 503}, method: http.MethodGet, requests: 4,
			check: func(err error) bool { var se *StatusError; return errors.As(err, &se) && se.Code == 503 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeAPI{answers: tc.answers}
			srv := httptest.NewServer(api)
			defer srv.Close()
			base := srv.URL
			if tc.url != "" {
				base = tc.url
			}
			if tc.tls {
				base = strings.Replace(base, "http://", "https://", 1)
			}
			m, sleeps := client(t, base, 3)
			err := m.Do(context.Background(), tc.method, "/api/vhosts/v", nil, nil)
			if err == nil || !tc.check(err) {
				t.Fatalf("Do = %v", err)
			}
			if got := int(api.requests.Load()); got != tc.requests {
				t.Errorf("%d requests, want %d", got, tc.requests)
			}
			if tc.requests <= 1 && len(*sleeps) != 0 {
				t.Errorf("paused %v, want no retry", *sleeps)
			}
		})
	}
}
