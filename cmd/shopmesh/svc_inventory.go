package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/shopmesh/shopmesh/services/inventory"
)

// inventoryTarget runs the inventory service. Environment:
//
//	SHOPMESH_INVENTORY_HTTP_ADDR            listen address (default 127.0.0.1:8105)
//	SHOPMESH_INVENTORY_LOW_STOCK_THRESHOLD  available units at or below which inventory.low_stock.v1
//	                                        is published (default 5; negative disables alerts)
//	SHOPMESH_INVENTORY_AUTO_RESTOCK         true to restock automatically on a low-stock alert (default false)
//	SHOPMESH_INVENTORY_RESTOCK_QUANTITY     units one automatic restock adds (default 50)
func inventoryTarget() target {
	return target{
		migrations: inventory.Migrations,
		run: func(ctx context.Context, a *app, _ serveOptions) error {
			kit, err := serviceKit(a.env, inventory.Name, "127.0.0.1:8105")
			if err != nil {
				return err
			}
			cfg := inventory.Config{Kit: kit}
			if v := a.env.getenv("SHOPMESH_INVENTORY_LOW_STOCK_THRESHOLD"); v != "" {
				if cfg.LowStockThreshold, err = strconv.Atoi(v); err != nil {
					return fmt.Errorf("SHOPMESH_INVENTORY_LOW_STOCK_THRESHOLD: %w", err)
				}
			}
			if v := a.env.getenv("SHOPMESH_INVENTORY_AUTO_RESTOCK"); v != "" {
				if cfg.AutoRestock, err = strconv.ParseBool(v); err != nil {
					return fmt.Errorf("SHOPMESH_INVENTORY_AUTO_RESTOCK: %w", err)
				}
			}
			if v := a.env.getenv("SHOPMESH_INVENTORY_RESTOCK_QUANTITY"); v != "" {
				if cfg.RestockQuantity, err = strconv.Atoi(v); err != nil {
					return fmt.Errorf("SHOPMESH_INVENTORY_RESTOCK_QUANTITY: %w", err)
				}
			}
			return inventory.Run(ctx, cfg, a.logger)
		},
	}
}
