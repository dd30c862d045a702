package main

import (
	"context"
	"fmt"
	"time"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/services/order"
)

// orderTarget runs the order service. Environment:
//
//	SHOPMESH_ORDER_HTTP_ADDR        listen address (default 127.0.0.1:8104)
//	SHOPMESH_ORDER_PAYMENT_TIMEOUT  how long an order waits for payment (a Go duration, default 30s)
func orderTarget() target {
	return target{
		migrations: order.Migrations,
		run: func(ctx context.Context, a *app, _ serveOptions) error {
			db, amqpURL, err := a.env.serviceURLs(order.Name)
			if err != nil {
				return err
			}
			addr := a.env.getenv("SHOPMESH_ORDER_HTTP_ADDR")
			if addr == "" {
				addr = "127.0.0.1:8104"
			}
			cfg := order.Config{Kit: servicekit.Config{Name: order.Name, DatabaseURL: db, AMQPURL: amqpURL, HTTPAddr: addr}}
			if v := a.env.getenv("SHOPMESH_ORDER_PAYMENT_TIMEOUT"); v != "" {
				if cfg.PaymentTimeout, err = time.ParseDuration(v); err != nil {
					return fmt.Errorf("SHOPMESH_ORDER_PAYMENT_TIMEOUT: %w", err)
				}
			}
			return order.Run(ctx, cfg, a.logger)
		},
	}
}
