package demo_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/internal/demo"
	"github.com/shopmesh/shopmesh/tests/system"
)

// TestDemoPlaysEveryPath runs the demo against the real binary, with every
// service on real PostgreSQL and RabbitMQ, and checks that every path ended
// as it must and that the report shows each of them.
func TestDemoPlaysEveryPath(t *testing.T) {
	// Long enough for tok_ok to win on a machine starved of CPU, short
	// enough for the timeout path to end well within Wait.
	sys := system.Start(t, system.Options{Env: map[string]string{"SHOPMESH_ORDER_PAYMENT_TIMEOUT": "10s"}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	var out bytes.Buffer
	cfg := demo.Config{
		Gateway:        sys.Gateway,
		Customers:      4,
		Seed:           7,
		Wait:           90 * time.Second,
		PaymentTimeout: 10 * time.Second,
		CreateAdmin: func(ctx context.Context, email, password string) error {
			cmd := sys.Command("user", "create-admin", "--email", email, "--password", password)
			if b, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%v: %s", err, b)
			}
			return nil
		},
	}
	sum, err := demo.Run(ctx, cfg, &out)
	report := out.String()
	t.Logf("report:\n%s", report)
	if err != nil {
		t.Fatalf("Run = %v", err)
	}

	if sum.Seed != 7 {
		t.Errorf("seed = %d, want 7", sum.Seed)
	}
	if !sum.OK() {
		t.Errorf("summary not OK: failed orders %+v, stock %+v", sum.Failed(), sum.Stock)
	}
	played := map[demo.Path]int{}
	customers := map[string]bool{}
	for _, o := range sum.Orders {
		played[o.Path]++
		customers[o.Customer] = true
		if o.Status != o.WantStatus || o.Reason != o.WantReason || o.Settled <= 0 {
			t.Errorf("%s order %s: %s/%q settled %s, want %s/%q", o.Path, o.OrderID, o.Status, o.Reason, o.Settled, o.WantStatus, o.WantReason)
		}
		if len(o.Timeline) == 0 || o.Timeline[0].Type != "placed" {
			t.Errorf("%s order %s: timeline %+v, want it to start with placed", o.Path, o.OrderID, o.Timeline)
		}
	}
	for _, p := range demo.Paths() {
		if played[p] == 0 {
			t.Errorf("path %s not played", p)
		}
		if !strings.Contains(report, string(p)) {
			t.Errorf("report does not mention path %s", p)
		}
	}
	if len(customers) != cfg.Customers {
		t.Errorf("%d customers played, want %d", len(customers), cfg.Customers)
	}
	if len(sum.Stock) == 0 {
		t.Errorf("no stock levels in the summary")
	}
	for _, want := range []string{"placed → stock_reserved", "summary: ", "stock", "payments, shipments and invoices", "credit note"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	createAdmin := func(context.Context, string, string) error { return nil }
	tests := []struct {
		name    string
		cfg     demo.Config
		wantErr string
	}{
		{"defaults with a way to create the admin", demo.Config{CreateAdmin: createAdmin}, ""},
		{"existing admin", demo.Config{AdminEmail: "a@example.com", AdminPassword: "secret password"}, ""},
		{"no admin at all", demo.Config{}, "no administrator"},
		{"email without password", demo.Config{AdminEmail: "a@example.com", CreateAdmin: createAdmin}, "both"},
		{"not a URL", demo.Config{Gateway: "127.0.0.1:8080", CreateAdmin: createAdmin}, "gateway"},
		{"too many customers", demo.Config{Customers: demo.MaxCustomers + 1, CreateAdmin: createAdmin}, "customers"},
		{"negative wait", demo.Config{Wait: -time.Second, CreateAdmin: createAdmin}, "wait"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: Validate = %v, want nil", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: Validate = %v, want an error about %q", tt.name, err, tt.wantErr)
		}
	}
}

// A system that is not there is reported within the wait, not hung on.
func TestRunReportsAnUnreachableGateway(t *testing.T) {
	cfg := demo.Config{Gateway: "http://127.0.0.1:1", AdminEmail: "a@example.com", AdminPassword: "secret password",
		Wait: 500 * time.Millisecond, PollInterval: 50 * time.Millisecond}
	start := time.Now()
	_, err := demo.Run(context.Background(), cfg, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "gateway ready") {
		t.Errorf("Run = %v, want an error about the gateway", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Run took %s against a missing gateway, want it bounded by the wait", took)
	}
}
