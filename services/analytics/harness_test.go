package analytics_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/analytics"
	"github.com/shopmesh/shopmesh/tests/servicetest"
)

// harness is one analytics service running in-process; see servicetest.
type harness struct {
	*servicetest.Service
	t    *testing.T
	ctx  context.Context
	pool *pgxpool.Pool
}

// start starts the service, retrying failed messages quickly.
func start(t *testing.T) *harness {
	t.Helper()
	retry := func(c *outbox.ConsumerConfig) { c.RetryBackoff = 20 * time.Millisecond }
	run := func(ctx context.Context, kit servicekit.Config, logger *slog.Logger) error {
		return analytics.Run(ctx, servicetest.Apply(analytics.Config{Kit: kit, Consumer: retry}), logger)
	}
	svc := servicetest.Start(t, servicetest.Spec{Name: analytics.Name, Consumer: analytics.Consumer, Run: run})
	return &harness{Service: svc, t: t, ctx: svc.Context(), pool: svc.Pool}
}

// For returns the harness with its helpers reporting to t: how a subtest
// calls them.
func (h *harness) For(t *testing.T) *harness {
	return &harness{Service: h.Service.For(t), t: t, ctx: h.ctx, pool: h.pool}
}

type response = servicetest.Response

// do sends a request as userID with role ("" for no identity).
func (h *harness) do(method, path, userID, role string, body []byte) response {
	h.t.Helper()
	return h.Do(method, path, servicetest.Caller{UserID: userID, Role: role}, body)
}

// getJSON fetches path as an administrator and decodes a 200 answer into v.
func (h *harness) getJSON(path string, v any) {
	h.t.Helper()
	h.GetJSON(path, servicetest.Caller{UserID: newID(), Role: "admin"}, v)
}

func newID() string { return outbox.NewID() }

func eur(minor int64) contracts.Money { return contracts.Money{AmountMinor: minor, Currency: "EUR"} }
