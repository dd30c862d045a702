package customer_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/customer"
	"github.com/shopmesh/shopmesh/tests/servicetest"
)

// harness is one customer service running in-process; see servicetest.
type harness struct {
	*servicetest.Service
	t    *testing.T
	pool *pgxpool.Pool
}

// start starts the service, retrying failed messages quickly.
func start(t *testing.T) *harness {
	t.Helper()
	retry := func(c *outbox.ConsumerConfig) { c.RetryBackoff = 20 * time.Millisecond }
	run := func(ctx context.Context, kit servicekit.Config, logger *slog.Logger) error {
		return customer.Run(ctx, servicetest.Apply(customer.Config{Kit: kit, Consumer: retry}), logger)
	}
	svc := servicetest.Start(t, servicetest.Spec{Name: customer.Name, Consumer: customer.Consumer, Run: run})
	return &harness{Service: svc, t: t, pool: svc.Pool}
}

// For returns the harness with its helpers reporting to t: how a subtest
// calls them.
func (h *harness) For(t *testing.T) *harness {
	return &harness{Service: h.Service.For(t), t: t, pool: h.pool}
}

type response = servicetest.Response

// do sends a request as the customer userID ("" for no identity).
func (h *harness) do(method, path, userID string, body []byte) response {
	h.t.Helper()
	return h.Do(method, path, servicetest.AsCustomer(userID), body)
}

// getJSON fetches path as the customer userID and decodes a 200 answer into v.
func (h *harness) getJSON(path, userID string, v any) {
	h.t.Helper()
	h.GetJSON(path, servicetest.AsCustomer(userID), v)
}

func newID() string { return outbox.NewID() }

func eur(minor int64) contracts.Money { return contracts.Money{AmountMinor: minor, Currency: "EUR"} }
