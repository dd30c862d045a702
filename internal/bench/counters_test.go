package bench

import (
	"maps"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shopmesh/shopmesh/outbox"
)

// In `serve all` every service's address serves the one registry of the
// process: reading each service's series from it counts each once.
func TestCountersTakeOnlyTheServiceReadsSeries(t *testing.T) {
	const exposition = `# TYPE shopmesh_inbox_processed_total counter
shopmesh_inbox_processed_total{consumer="inbox",service="order",type="payment.authorized.v1"} 3
shopmesh_inbox_processed_total{consumer="inbox",service="order",type="order.payment_timed_out.v1"} 1
shopmesh_inbox_processed_total{consumer="inbox",service="cart",type="order.placed.v2"} 5
shopmesh_inbox_processed_total{consumer="events",service="analytics",type="payment.authorized.v1"} 7
# TYPE shopmesh_relay_published_total counter
shopmesh_relay_published_total{service="order"} 4
shopmesh_relay_published_total{service="cart"} 2
# TYPE shopmesh_relay_held_back_total counter
shopmesh_relay_held_back_total{service="order"} 6
shopmesh_relay_held_back_total{service="analytics"} 1
`
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, svc := range []string{"order", "cart", "analytics"} {
		sumOf(counts, families[outbox.PublishedMetric], svc, countPublished+"/"+svc, "")
		sumOf(counts, families[outbox.AppliedMetric], svc, countDelivered+"/", "type")
		sumOf(counts, families[outbox.HeldBackMetric], svc, countHeldBack+"/"+svc, "")
	}
	want := map[string]float64{
		"published/order": 4, "published/cart": 2, "heldback/order": 6, "heldback/analytics": 1,
		"delivered/payment.authorized.v1": 10, "delivered/order.payment_timed_out.v1": 1, "delivered/order.placed.v2": 5,
	}
	if !maps.Equal(counts, want) {
		t.Errorf("counts %v, want %v", counts, want)
	}
	if sumOf(counts, families[outbox.PublishedMetric], "analytics", "x", "") {
		t.Error("sumOf found a series of a service that has none")
	}
}
