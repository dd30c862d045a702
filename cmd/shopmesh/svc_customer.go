package main

import (
	"context"

	"github.com/shopmesh/shopmesh/services/customer"
)

// customerTarget runs the customer service. Environment:
// SHOPMESH_CUSTOMER_HTTP_ADDR (default 127.0.0.1:8109).
func customerTarget() target {
	return target{
		migrations: customer.Migrations,
		run: func(ctx context.Context, a *app, _ serveOptions) error {
			kit, err := serviceKit(a.env, customer.Name, "127.0.0.1:8109")
			if err != nil {
				return err
			}
			cfg := customer.Config{Kit: kit}
			return customer.Run(ctx, cfg, a.logger)
		},
	}
}
