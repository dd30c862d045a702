package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/shopmesh/shopmesh/services/invoice"
)

// invoiceTarget runs the invoice service. Environment:
// SHOPMESH_INVOICE_HTTP_ADDR (default 127.0.0.1:8108) and
// SHOPMESH_INVOICE_VAT_RATE_BP (VAT included in prices, basis points,
// default 1900).
func invoiceTarget() target {
	return target{
		migrations: invoice.Migrations,
		run: func(ctx context.Context, a *app, _ serveOptions) error {
			kit, err := serviceKit(a.env, invoice.Name, "127.0.0.1:8108")
			if err != nil {
				return err
			}
			cfg := invoice.Config{
				Kit:                kit,
				VATRateBasisPoints: invoice.DefaultVATRateBasisPoints,
			}
			if v := a.env.getenv("SHOPMESH_INVOICE_VAT_RATE_BP"); v != "" {
				if cfg.VATRateBasisPoints, err = strconv.Atoi(v); err != nil {
					return fmt.Errorf("SHOPMESH_INVOICE_VAT_RATE_BP: %w", err)
				}
			}
			return invoice.Run(ctx, cfg, a.logger)
		},
	}
}
