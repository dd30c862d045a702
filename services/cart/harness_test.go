package cart_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/services/cart"
	"github.com/shopmesh/shopmesh/tests/servicetest"
)

// harness is one cart service running in-process; see servicetest.
type harness struct {
	*servicetest.Service
	t *testing.T
}

// start starts the cart service with its Config changed by mod (unless nil).
func start(t *testing.T, mod func(*cart.Config)) *harness {
	run := func(ctx context.Context, kit servicekit.Config, logger *slog.Logger) error {
		return cart.Run(ctx, servicetest.Apply(cart.Config{Kit: kit}, mod), logger)
	}
	return &harness{Service: servicetest.Start(t, servicetest.Spec{Name: cart.Name, Run: run}), t: t}
}

type (
	caller   = servicetest.Caller
	response = servicetest.Response
)

var anonymous, admin, customer = servicetest.Anonymous, servicetest.Admin, servicetest.Customer
