package main

import (
	"context"

	"github.com/shopmesh/shopmesh/services/catalog"
)

// catalogTarget runs the catalog service. Environment:
//
//	SHOPMESH_CATALOG_HTTP_ADDR  listen address (default 127.0.0.1:8102)
func catalogTarget() target {
	return target{
		migrations: catalog.Migrations,
		run: func(ctx context.Context, a *app, _ serveOptions) error {
			kit, err := serviceKit(a.env, catalog.Name, "127.0.0.1:8102")
			if err != nil {
				return err
			}
			cfg := catalog.Config{Kit: kit}
			return catalog.Run(ctx, cfg, a.logger)
		},
	}
}
