package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/shopmesh/shopmesh/internal/httpkit"
)

// healthz answers while the process serves.
func (h *handler) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// readyz answers 204 when every upstream's /readyz does, else 503 naming
// the services that are not ready.
func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.ReadyTimeout)
	defer cancel()
	var (
		mu       sync.Mutex
		notReady []string
		wg       sync.WaitGroup
	)
	for _, s := range Services() {
		u := h.proxies[s]
		wg.Go(func() {
			if err := u.ready(ctx); err != nil {
				h.logger.Warn("upstream not ready", "upstream", s, "err", err)
				mu.Lock()
				notReady = append(notReady, string(s))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(notReady) > 0 {
		slices.Sort(notReady)
		httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusServiceUnavailable, "not-ready",
			"not ready: "+strings.Join(notReady, ", ")))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// ready probes the service's /readyz.
func (u *upstream) ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.base.JoinPath("/readyz").String(), nil)
	if err != nil {
		return err
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // lets the connection be reused
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("readyz answered %d", resp.StatusCode)
	}
	return nil
}
