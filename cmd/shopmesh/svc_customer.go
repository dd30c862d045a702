package main

import (
	"context"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/services/customer"
)

// customerTarget runs the customer service. Environment:
// SHOPMESH_CUSTOMER_HTTP_ADDR (default 127.0.0.1:8109).
func customerTarget() target {
	return target{
		migrations: customer.Migrations,
		run: func(ctx context.Context, a *app, _ serveOptions) error {
			db, amqpURL, err := a.env.serviceURLs(customer.Name)
			if err != nil {
				return err
			}
			addr := a.env.getenv("SHOPMESH_CUSTOMER_HTTP_ADDR")
			if addr == "" {
				addr = "127.0.0.1:8109"
			}
			cfg := customer.Config{Kit: servicekit.Config{Name: customer.Name, DatabaseURL: db, AMQPURL: amqpURL, HTTPAddr: addr}}
			return customer.Run(ctx, cfg, a.logger)
		},
	}
}
