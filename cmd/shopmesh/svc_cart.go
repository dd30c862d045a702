package main

import (
	"context"
	"fmt"
	"time"

	"github.com/shopmesh/shopmesh/services/cart"
)

// cartTarget runs the cart service. Environment:
//
//	SHOPMESH_CART_HTTP_ADDR           listen address (default 127.0.0.1:8103)
//	SHOPMESH_CART_CHECKOUT_RETENTION  how long a checkout's Idempotency-Key is remembered
//	                                  (a Go duration, default 168h)
func cartTarget() target {
	return target{
		migrations: cart.Migrations,
		run: func(ctx context.Context, a *app, _ serveOptions) error {
			kit, err := serviceKit(a.env, cart.Name, "127.0.0.1:8103")
			if err != nil {
				return err
			}
			cfg := cart.Config{Kit: kit}
			if v := a.env.getenv("SHOPMESH_CART_CHECKOUT_RETENTION"); v != "" {
				if cfg.CheckoutRetention, err = time.ParseDuration(v); err != nil {
					return fmt.Errorf("SHOPMESH_CART_CHECKOUT_RETENTION: %w", err)
				}
			}
			return cart.Run(ctx, cfg, a.logger)
		},
	}
}
