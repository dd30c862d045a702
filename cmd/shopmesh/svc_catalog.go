package main

import (
	"context"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/services/catalog"
)

// catalogTarget runs the catalog service. Environment:
//
//	SHOPMESH_CATALOG_HTTP_ADDR  listen address (default 127.0.0.1:8102)
func catalogTarget() target {
	return target{
		migrations: catalog.Migrations,
		run: func(ctx context.Context, a *app, _ serveOptions) error {
			db, amqpURL, err := a.env.serviceURLs(catalog.Name)
			if err != nil {
				return err
			}
			addr := a.env.getenv("SHOPMESH_CATALOG_HTTP_ADDR")
			if addr == "" {
				addr = "127.0.0.1:8102"
			}
			cfg := catalog.Config{Kit: servicekit.Config{Name: catalog.Name, DatabaseURL: db, AMQPURL: amqpURL, HTTPAddr: addr}}
			return catalog.Run(ctx, cfg, a.logger)
		},
	}
}
