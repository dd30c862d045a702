package outbox

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Services name their consumers alike ("inbox"), and `serve all` registers
// every service's instruments in one registry: each consumer series names
// its service, so two services' consumers are never counted as one.
func TestConsumerMetricsNameTheirService(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"order", "cart", "order"} {
		m.applied(svc, "inbox", "order.placed.v2", time.Now())
		m.duplicate(svc, "inbox")
		m.retry(svc, "inbox")
		m.deadLettered(svc, "inbox")
		m.batchSplit(svc, "inbox")
		m.committed(svc, "inbox", 1, time.Millisecond)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range metric.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			svc, ok := labels["service"]
			if !ok || labels["consumer"] != "inbox" {
				continue
			}
			seen++
			want := map[string]float64{"order": 2, "cart": 1}[svc]
			got := metric.GetCounter().GetValue()
			if h := metric.GetHistogram(); h != nil {
				got = float64(h.GetSampleCount())
			}
			if got != want {
				t.Errorf("%s{service=%q}: %v, want %v", f.GetName(), svc, got, want)
			}
		}
	}
	// Two services, each in processed, duplicates, retries, dead letters,
	// splits, delivery latency, transaction time and batch size.
	if seen != 2*8 {
		t.Errorf("%d consumer series with a service label, want %d", seen, 2*8)
	}
}
