package main

import (
	"context"
	"fmt"
	"time"

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
			kit, err := serviceKit(a.env, order.Name, "127.0.0.1:8104")
			if err != nil {
				return err
			}
			cfg := order.Config{Kit: kit}
			if v := a.env.getenv("SHOPMESH_ORDER_PAYMENT_TIMEOUT"); v != "" {
				if cfg.PaymentTimeout, err = time.ParseDuration(v); err != nil {
					return fmt.Errorf("SHOPMESH_ORDER_PAYMENT_TIMEOUT: %w", err)
				}
			}
			return order.Run(ctx, cfg, a.logger)
		},
	}
}
