package bench

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shopmesh/shopmesh/internal/servicekit"
)

// roundTrips reads every service's count of PostgreSQL round trips from
// its /metrics. In `serve all` every address serves the one registry of the
// process, so a service's figure is taken from its own label wherever read.
func (s *system) roundTrips(ctx context.Context) (map[string]float64, error) {
	trips := map[string]float64{}
	for _, svc := range s.Services {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Addr(svc)+"/metrics", nil)
		if err != nil {
			return nil, err
		}
		resp, err := s.HTTP.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s metrics: %w", svc, err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s metrics: %w", svc, err)
		}
		family, ok := families[servicekit.RoundTripsMetric]
		if !ok {
			return nil, fmt.Errorf("%s metrics: no %s", svc, servicekit.RoundTripsMetric)
		}
		found := false
		for _, m := range family.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "service" && l.GetValue() == svc {
					trips[svc] += m.GetCounter().GetValue()
					found = true
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("%s metrics: no %s of service %s", svc, servicekit.RoundTripsMetric, svc)
		}
	}
	return trips, nil
}
