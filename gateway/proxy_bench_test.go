package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BenchmarkProxyCopyBuffers compares, side by side, the memory one proxied
// request allocates in this process (client, gateway proxy and service
// together) with the gateway's proxy, which borrows its copy buffer, and
// with the same proxy allocating one per request as httputil does without
// a pool.
func BenchmarkProxyCopyBuffers(b *testing.B) {
	body := `{"id":"0197","status":"confirmed","lines":[{"product_id":"p1","quantity":2}]}`
	service := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}))
	defer service.Close()
	base, err := url.Parse(service.URL)
	if err != nil {
		b.Fatal(err)
	}
	transport := newTransport(Config{DialTimeout: 5 * time.Second, RequestTimeout: 10 * time.Second})
	defer transport.CloseIdleConnections()
	pooled := newUpstream("order", base, transport, slog.New(slog.DiscardHandler))
	if pooled.proxy.BufferPool == nil {
		b.Fatal("the gateway's proxy has no buffer pool")
	}
	unpooled := *pooled.proxy
	unpooled.BufferPool = nil
	fronts := map[string]*httptest.Server{"pooled": httptest.NewServer(pooled.proxy), "unpooled": httptest.NewServer(&unpooled)}
	for _, f := range fronts {
		defer f.Close()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	get := func(url string) {
		res, err := client.Get(url + "/api/v1/orders/0197")
		if err != nil {
			b.Fatal(err)
		}
		got, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK || !strings.Contains(string(got), `"confirmed"`) {
			b.Fatalf("proxied request: %d %q %v", res.StatusCode, got, err)
		}
	}
	const block = 200
	allocated := map[string]uint64{}
	var ms runtime.MemStats
	for b.Loop() {
		for _, name := range []string{"pooled", "unpooled"} {
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			for range block {
				get(fronts[name].URL)
			}
			runtime.ReadMemStats(&ms)
			allocated[name] += ms.TotalAlloc - before
		}
	}
	per := func(name string) float64 { return float64(allocated[name]) / float64(b.N*block) }
	b.ReportMetric(per("pooled"), "B/req-pooled")
	b.ReportMetric(per("unpooled"), "B/req-unpooled")
	b.ReportMetric(per("pooled")/per("unpooled"), "pooled/unpooled")
}
