package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shopmesh/shopmesh/internal/demo"
	"github.com/shopmesh/shopmesh/services/order"
)

// newDemoCommand plays customers through every order path against a
// running system.
func newDemoCommand(a *app) *cobra.Command {
	var cfg demo.Config
	cmd := &cobra.Command{
		Use:   "demo [flags]",
		Short: "Seed a catalogue and play customers through every order path against a running system",
		Long: `demo talks to a running shopmesh through its public gateway only. It seeds a
small catalogue with the admin API, registers a few customers and has them
order at once down every path of the order saga: delivered (tok_ok), payment
declined (tok_decline), payment timeout (tok_timeout), out of stock,
undeliverable (country ZZ) and a customer cancel while pending. It prints each
order's timeline as it settles, then the orders, a summary, the stock levels
and every order's payment, shipment and invoice. It exits non-zero when an
order does not end as its path demands within --wait.

The gateway is --gateway, else http://$SHOPMESH_GATEWAY_ADDR, else
http://127.0.0.1:8080. Without --admin-email and --admin-password (or
SHOPMESH_DEMO_ADMIN_EMAIL and SHOPMESH_DEMO_ADMIN_PASSWORD), demo makes its own
administrator, ` + demo.DefaultAdminEmail + `, by running ` + "`shopmesh user create-admin`" + `
with a fresh password; that needs the user database (SHOPMESH_USER_DATABASE_URL,
or SHOPMESH_SECRET with the administrator URLs).

The payment timeout path waits for the order service's payment timeout
(SHOPMESH_ORDER_PAYMENT_TIMEOUT, default 30s); --wait must be longer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			getenv := a.env.getenv
			if cfg.Gateway == "" {
				cfg.Gateway = gatewayURL(getenv("SHOPMESH_GATEWAY_ADDR"))
			}
			if cfg.AdminEmail == "" && cfg.AdminPassword == "" {
				cfg.AdminEmail, cfg.AdminPassword = getenv("SHOPMESH_DEMO_ADMIN_EMAIL"), getenv("SHOPMESH_DEMO_ADMIN_PASSWORD")
			}
			if cfg.AdminEmail == "" {
				cfg.CreateAdmin = createAdminFunc(a)
			}
			cfg.PaymentTimeout = order.DefaultPaymentTimeout
			if v := getenv("SHOPMESH_ORDER_PAYMENT_TIMEOUT"); v != "" {
				d, err := time.ParseDuration(v)
				if err != nil {
					return fmt.Errorf("SHOPMESH_ORDER_PAYMENT_TIMEOUT: %w", err)
				}
				cfg.PaymentTimeout = d
			}
			_, err := demo.Run(cmd.Context(), cfg, a.stdout)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Gateway, "gateway", "", "gateway base URL (default http://$SHOPMESH_GATEWAY_ADDR, else "+demo.DefaultGateway+")")
	f.StringVar(&cfg.AdminEmail, "admin-email", "", "email of an existing administrator (default: create "+demo.DefaultAdminEmail+")")
	f.StringVar(&cfg.AdminPassword, "admin-password", "", "password of that administrator")
	f.IntVar(&cfg.Customers, "customers", demo.DefaultCustomers, fmt.Sprintf("how many customers play (1 to %d); every path is played whatever the number", demo.MaxCustomers))
	f.Int64Var(&cfg.Seed, "seed", 0, "seed of the random choices (names, order contents); 0 takes one from the clock")
	f.DurationVar(&cfg.Wait, "wait", demo.DefaultWait, "how long each wait may take, each order's settling included")
	return cmd
}

// gatewayURL turns the gateway's listen address into a URL to call it by: a
// wildcard or missing host is reached on the loopback interface.
func gatewayURL(addr string) string {
	if addr == "" {
		return demo.DefaultGateway
	}
	if strings.Contains(addr, "://") {
		return addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// createAdminFunc makes the demo's administrator by running `user
// create-admin` in-process: the same command, the same code path, not a copy.
func createAdminFunc(a *app) func(ctx context.Context, email, password string) error {
	return func(ctx context.Context, email, password string) error {
		quiet := *a
		quiet.stdout = io.Discard // the demo reports the administrator itself
		cmd := newUserCommand(&quiet)
		cmd.SetArgs([]string{"create-admin", "--email", email, "--password", password, "--name", "Demo administrator"})
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		if err := cmd.ExecuteContext(ctx); err != nil {
			return fmt.Errorf("user create-admin: %w", err)
		}
		return nil
	}
}
