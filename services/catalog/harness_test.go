package catalog_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/services/catalog"
	"github.com/shopmesh/shopmesh/tests/servicetest"
)

// harness is one catalog service running in-process; see servicetest.
type harness struct {
	*servicetest.Service
	t *testing.T
}

// start starts the catalog service with its Config changed by mod (unless nil).
func start(t *testing.T, mod func(*catalog.Config)) *harness {
	run := func(ctx context.Context, kit servicekit.Config, logger *slog.Logger) error {
		return catalog.Run(ctx, servicetest.Apply(catalog.Config{Kit: kit}, mod), logger)
	}
	return &harness{Service: servicetest.Start(t, servicetest.Spec{Name: catalog.Name, Run: run}), t: t}
}

type (
	caller   = servicetest.Caller
	response = servicetest.Response
)

var anonymous, admin, customer = servicetest.Anonymous, servicetest.Admin, servicetest.Customer
