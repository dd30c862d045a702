package main

import (
	"context"
	"fmt"
	"time"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/services/payment"
)

// paymentTarget runs the payment service. Environment:
// SHOPMESH_PAYMENT_HTTP_ADDR (default 127.0.0.1:8106) and
// SHOPMESH_PAYMENT_PROVIDER_LATENCY (a Go duration, default 0).
func paymentTarget() target {
	return target{
		migrations: payment.Migrations,
		run: func(ctx context.Context, a *app, _ serveOptions) error {
			db, amqpURL, err := a.env.serviceURLs(payment.Name)
			if err != nil {
				return err
			}
			addr := a.env.getenv("SHOPMESH_PAYMENT_HTTP_ADDR")
			if addr == "" {
				addr = "127.0.0.1:8106"
			}
			cfg := payment.Config{Kit: servicekit.Config{Name: payment.Name, DatabaseURL: db, AMQPURL: amqpURL, HTTPAddr: addr}}
			if v := a.env.getenv("SHOPMESH_PAYMENT_PROVIDER_LATENCY"); v != "" {
				if cfg.ProviderLatency, err = time.ParseDuration(v); err != nil {
					return fmt.Errorf("SHOPMESH_PAYMENT_PROVIDER_LATENCY: %w", err)
				}
			}
			return payment.Run(ctx, cfg, a.logger)
		},
	}
}
