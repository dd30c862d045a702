package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/outbox"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"2026-11-20T08:00:00Z", time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC), false},
		{"2h", now.Add(-2 * time.Hour), false},
		{"-2h", time.Time{}, true},
		{"yesterday", time.Time{}, true},
	}
	for _, tt := range tests {
		got, err := parseSince(tt.in, now)
		if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestServiceURLsPreferExplicitEnvironment(t *testing.T) {
	vars := map[string]string{
		"SHOPMESH_ORDER_DATABASE_URL": "postgres://order@db/order",
		"SHOPMESH_ORDER_AMQP_URL":     "amqp://order@mq/shopmesh",
	}
	e := loadEnv(func(k string) string { return vars[k] })
	db, mq, err := e.serviceURLs("order")
	if err != nil || db != vars["SHOPMESH_ORDER_DATABASE_URL"] || mq != vars["SHOPMESH_ORDER_AMQP_URL"] {
		t.Errorf("serviceURLs = %q, %q, %v", db, mq, err)
	}
	if _, _, err := e.serviceURLs("cart"); err == nil || !strings.Contains(err.Error(), "SHOPMESH_CART_DATABASE_URL") {
		t.Errorf("serviceURLs(cart) without configuration = %v, want an error naming the variables", err)
	}
}

func TestUnknownServiceIsAnError(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"status", "warehouse"}, func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `unknown service "warehouse"`) {
		t.Errorf("status warehouse = %v, want unknown service", err)
	}
}

func TestMigrateNeedsAdministratorURLs(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"migrate"}, func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "SHOPMESH_POSTGRES_URL") {
		t.Errorf("migrate without environment = %v, want it to name SHOPMESH_POSTGRES_URL", err)
	}
}

// SHOPMESH_<SERVICE>_CONSUMER_LINGER sets the linger of the service's
// consumers over the service's default; a bad value is refused.
func TestConsumerLingerFromTheEnvironment(t *testing.T) {
	vars := map[string]string{
		"SHOPMESH_ANALYTICS_DATABASE_URL": "postgres://analytics@db/analytics",
		"SHOPMESH_ANALYTICS_AMQP_URL":     "amqp://analytics@mq/shopmesh",
	}
	e := loadEnv(func(k string) string { return vars[k] })
	kit, err := serviceKit(e, "analytics", "127.0.0.1:8112")
	if err != nil || kit.Consumer != nil {
		t.Fatalf("without the variable: consumer adjustment set %v, err %v", kit.Consumer != nil, err)
	}
	for value, want := range map[string]time.Duration{"0": 0, "250ms": 250 * time.Millisecond} {
		vars["SHOPMESH_ANALYTICS_CONSUMER_LINGER"] = value
		kit, err := serviceKit(e, "analytics", "127.0.0.1:8112")
		if err != nil || kit.Consumer == nil {
			t.Fatalf("%s: consumer adjustment set %v, err %v", value, kit.Consumer != nil, err)
		}
		c := outbox.ConsumerConfig{Linger: time.Second}
		kit.Consumer(&c)
		if c.Linger != want {
			t.Errorf("%s: linger %v, want %v", value, c.Linger, want)
		}
	}
	for _, bad := range []string{"soon", "-1s", "1m"} {
		vars["SHOPMESH_ANALYTICS_CONSUMER_LINGER"] = bad
		if _, err := serviceKit(e, "analytics", "127.0.0.1:8112"); err == nil || !strings.Contains(err.Error(), "SHOPMESH_ANALYTICS_CONSUMER_LINGER") {
			t.Errorf("%q: err %v, want one naming the variable", bad, err)
		}
	}
}
