package servicetest

import (
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Metrics reads the service's /metrics: each sample's value summed over
// its labels, by name.
func (s *Service) Metrics() map[string]float64 {
	s.t.Helper()
	resp, err := http.Get(s.BaseURL + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, "{")
		if i := strings.LastIndexByte(rest, ' '); i >= 0 {
			if v, err := strconv.ParseFloat(rest[i+1:], 64); err == nil {
				out[name] += v
			}
		}
	}
	return out
}
