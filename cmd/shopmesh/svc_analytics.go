package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/shopmesh/shopmesh/services/analytics"
)

// analyticsTarget runs the analytics service. Environment:
//
//	SHOPMESH_ANALYTICS_HTTP_ADDR       listen address (default 127.0.0.1:8112)
//	SHOPMESH_ANALYTICS_TOP_PRODUCTS    products ranked in the sales report (default 10, at most 100)
//	SHOPMESH_ANALYTICS_STOCK_PRODUCTS  products in the sales report's stock section (default 50, at most 1000)
func analyticsTarget() target {
	return target{
		migrations: analytics.Migrations,
		run: func(ctx context.Context, a *app, _ serveOptions) error {
			cfg, err := analyticsConfig(a.env)
			if err != nil {
				return err
			}
			return analytics.Run(ctx, cfg, a.logger)
		},
	}
}

func analyticsConfig(e env) (analytics.Config, error) {
	kit, err := serviceKit(e, analytics.Name, "127.0.0.1:8112")
	if err != nil {
		return analytics.Config{}, err
	}
	cfg := analytics.Config{Kit: kit}
	for name, dst := range map[string]*int{
		"SHOPMESH_ANALYTICS_TOP_PRODUCTS":   &cfg.TopProducts,
		"SHOPMESH_ANALYTICS_STOCK_PRODUCTS": &cfg.StockProducts,
	} {
		if v := e.getenv(name); v != "" {
			if *dst, err = strconv.Atoi(v); err != nil || *dst < 1 {
				return analytics.Config{}, fmt.Errorf("%s: %q is not a positive integer", name, v)
			}
		}
	}
	return cfg, cfg.Validate()
}
