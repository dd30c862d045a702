package invoice_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/invoice"
	"github.com/shopmesh/shopmesh/tests/servicetest"
)

// harness is one invoice service running in-process; see servicetest.
type harness struct {
	*servicetest.Service
	t *testing.T
}

// start starts the service with its Config changed by mod (unless nil).
func start(t *testing.T, mod func(*invoice.Config)) *harness {
	t.Helper()
	run := func(ctx context.Context, kit servicekit.Config, logger *slog.Logger) error {
		return invoice.Run(ctx, servicetest.Apply(invoice.Config{Kit: kit, VATRateBasisPoints: 1900}, mod), logger)
	}
	return &harness{Service: servicetest.Start(t, servicetest.Spec{Name: invoice.Name, Run: run}), t: t}
}

// published returns the payloads of the events of a type the service
// published, decoded.
func published[T any](h *harness, eventType string) []T {
	h.t.Helper()
	return servicetest.Published[T](h.Service, eventType)
}

// get requests a path as the customer userID ("" for none) and decodes a
// 200 answer into v when it is not nil.
func (h *harness) get(method, path, userID string, v any) (int, string) {
	h.t.Helper()
	return h.Fetch(method, path, servicetest.AsCustomer(userID), v)
}

func newID() string { return outbox.NewID() }

func eur(minor int64) contracts.Money { return contracts.Money{AmountMinor: minor, Currency: "EUR"} }

func fmtPath(format string, args ...any) string { return fmt.Sprintf(format, args...) }
