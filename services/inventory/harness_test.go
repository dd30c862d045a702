package inventory_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/services/inventory"
	"github.com/shopmesh/shopmesh/tests/servicetest"
)

// harness is one inventory service running in-process; see servicetest.
type harness struct {
	*servicetest.Service
	t *testing.T
}

// start starts the inventory service with its Config changed by mod (unless nil).
func start(t *testing.T, mod func(*inventory.Config)) *harness {
	run := func(ctx context.Context, kit servicekit.Config, logger *slog.Logger) error {
		return inventory.Run(ctx, servicetest.Apply(inventory.Config{Kit: kit}, mod), logger)
	}
	return &harness{Service: servicetest.Start(t, servicetest.Spec{Name: inventory.Name, Run: run}), t: t}
}

type (
	caller   = servicetest.Caller
	response = servicetest.Response
)

var anonymous, admin, customer = servicetest.Anonymous, servicetest.Admin, servicetest.Customer
