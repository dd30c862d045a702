package bench

import (
	"context"
	"fmt"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
)

// The counters a load phase is measured by, read from every service's
// /metrics and kept under keys "<kind>/<name>".
const (
	countTrips     = "trips"     // PostgreSQL round trips, by service
	countPublished = "published" // events the relays published, by producing service
	countDelivered = "delivered" // messages consumers applied, by event type
	countHeldBack  = "heldback"  // relay reads that left committed events behind, by service
)

// counters reads every service's PostgreSQL round trips, published events,
// applied messages and held-back relay reads from its /metrics. In `serve all` every address
// serves the one registry of the process, so only the series labelled
// with the service read are taken, wherever read.
func (s *system) counters(ctx context.Context) (map[string]float64, error) {
	counts := map[string]float64{}
	for _, svc := range s.Services {
		families, err := s.metrics(ctx, svc)
		if err != nil {
			return nil, err
		}
		family, ok := families[servicekit.RoundTripsMetric]
		if !ok || !sumOf(counts, family, svc, countTrips+"/"+svc, "") {
			return nil, fmt.Errorf("%s metrics: no %s of service %s", svc, servicekit.RoundTripsMetric, svc)
		}
		// A service that publishes or consumes nothing in a phase may have
		// no series yet.
		if family, ok := families[outbox.PublishedMetric]; ok {
			sumOf(counts, family, svc, countPublished+"/"+svc, "")
		}
		if family, ok := families[outbox.AppliedMetric]; ok {
			sumOf(counts, family, svc, countDelivered+"/", "type")
		}
		if family, ok := families[outbox.HeldBackMetric]; ok {
			sumOf(counts, family, svc, countHeldBack+"/"+svc, "")
		}
	}
	return counts, nil
}

// metrics reads and parses svc's /metrics.
func (s *system) metrics(ctx context.Context, svc string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Addr(svc)+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s metrics: %w", svc, err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s metrics: %w", svc, err)
	}
	return families, nil
}

// sumOf adds family's counters labelled service=svc to counts under key,
// followed by the value of label byLabel when one is given. It reports
// whether there was one.
func sumOf(counts map[string]float64, family *dto.MetricFamily, svc, key, byLabel string) bool {
	found := false
	for _, m := range family.GetMetric() {
		var service, by string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "service":
				service = l.GetValue()
			case byLabel:
				by = l.GetValue()
			}
		}
		if service == svc {
			counts[key+by] += m.GetCounter().GetValue()
			found = true
		}
	}
	return found
}
