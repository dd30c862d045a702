package main

import (
	"context"
	"fmt"
	"time"

	"github.com/shopmesh/shopmesh/services/payment"
)

// paymentTarget runs the payment service. Environment:
// SHOPMESH_PAYMENT_HTTP_ADDR (default 127.0.0.1:8106) and
// SHOPMESH_PAYMENT_PROVIDER_LATENCY (a Go duration, default 0).
func paymentTarget() target {
	return target{
		migrations: payment.Migrations,
		run: func(ctx context.Context, a *app, _ serveOptions) error {
			kit, err := serviceKit(a.env, payment.Name, "127.0.0.1:8106")
			if err != nil {
				return err
			}
			cfg := payment.Config{Kit: kit}
			if v := a.env.getenv("SHOPMESH_PAYMENT_PROVIDER_LATENCY"); v != "" {
				if cfg.ProviderLatency, err = time.ParseDuration(v); err != nil {
					return fmt.Errorf("SHOPMESH_PAYMENT_PROVIDER_LATENCY: %w", err)
				}
			}
			return payment.Run(ctx, cfg, a.logger)
		},
	}
}
