package main

import (
	"context"
	"fmt"
	"time"

	"github.com/shopmesh/shopmesh/services/shipping"
)

// shippingTarget runs the shipping service. Environment:
// SHOPMESH_SHIPPING_HTTP_ADDR (default 127.0.0.1:8107),
// SHOPMESH_SHIPPING_CARRIER_NAME, and Go durations
// SHOPMESH_SHIPPING_DISPATCH_DELAY (default 5s),
// SHOPMESH_SHIPPING_DELIVERY_DELAY (default 10s) and
// SHOPMESH_SHIPPING_CARRIER_POLL_INTERVAL (default 250ms).
func shippingTarget() target {
	return target{
		migrations: shipping.Migrations,
		run: func(ctx context.Context, a *app, _ serveOptions) error {
			kit, err := serviceKit(a.env, shipping.Name, "127.0.0.1:8107")
			if err != nil {
				return err
			}
			cfg := shipping.Config{
				Kit:         kit,
				CarrierName: a.env.getenv("SHOPMESH_SHIPPING_CARRIER_NAME"),
			}
			for key, d := range map[string]*time.Duration{
				"SHOPMESH_SHIPPING_DISPATCH_DELAY":        &cfg.DispatchDelay,
				"SHOPMESH_SHIPPING_DELIVERY_DELAY":        &cfg.DeliveryDelay,
				"SHOPMESH_SHIPPING_CARRIER_POLL_INTERVAL": &cfg.CarrierPollInterval,
			} {
				if v := a.env.getenv(key); v != "" {
					if *d, err = time.ParseDuration(v); err != nil {
						return fmt.Errorf("%s: %w", key, err)
					}
				}
			}
			return shipping.Run(ctx, cfg, a.logger)
		},
	}
}
