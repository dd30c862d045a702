package servicekit_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
)

func TestValidateFor(t *testing.T) {
	ok := servicekit.Config{DatabaseURL: "postgres://db", AMQPURL: "amqp://mq"}
	named := ok
	named.Name = "cart"
	other := ok
	other.Name = "order"
	tests := []struct {
		name    string
		cfg     servicekit.Config
		wantErr string
	}{
		{"empty name is the service's", ok, ""},
		{"the service's name", named, ""},
		{"another service's name", other, `kit name "order", want "cart"`},
		{"no database", servicekit.Config{AMQPURL: "amqp://mq"}, "cart: database URL is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.ValidateFor("cart")
			if tt.wantErr == "" && err != nil {
				t.Errorf("ValidateFor() = %v, want nil", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("ValidateFor() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestMigrationsDir(t *testing.T) {
	fsys := fstest.MapFS{"migrations/001_init.sql": {Data: []byte("-- +goose Up")}}
	if _, err := servicekit.MigrationsDir(fsys).Open("001_init.sql"); err != nil {
		t.Errorf("open 001_init.sql: %v", err)
	}
}

func TestServiceLogger(t *testing.T) {
	cfg := servicekit.Config{Name: "cart"}
	if l := cfg.ServiceLogger(nil); l == nil || cfg.Logger == nil {
		t.Errorf("ServiceLogger(nil) = %v with Config.Logger %v, want both set", l, cfg.Logger)
	}
}

// A service's consumer defaults come first, the operator's adjustments
// after them; a missing adjustment changes nothing.
func TestThenAppliesInOrderAndSkipsNil(t *testing.T) {
	var c outbox.ConsumerConfig
	servicekit.Then(servicekit.SerialBatches, nil, func(c *outbox.ConsumerConfig) { c.Workers = 3 })(&c)
	if c.Workers != 3 || c.Prefetch != 128 || c.MaxBatch != 64 {
		t.Errorf("got workers %d, prefetch %d, max batch %d; want 3, 128, 64", c.Workers, c.Prefetch, c.MaxBatch)
	}
	c = outbox.ConsumerConfig{}
	servicekit.Then(nil)(&c)
	if c != (outbox.ConsumerConfig{}) {
		t.Errorf("Then(nil) changed the config: %+v", c)
	}
}

// LingeringBatches is SerialBatches with DefaultLinger; an operator's
// ConsumerLinger after it wins.
func TestLingeringBatches(t *testing.T) {
	var c outbox.ConsumerConfig
	servicekit.LingeringBatches(&c)
	if c.Workers != 1 || c.MaxBatch != 64 || c.Linger != servicekit.DefaultLinger {
		t.Errorf("got workers %d, max batch %d, linger %v; want 1, 64, %v", c.Workers, c.MaxBatch, c.Linger, servicekit.DefaultLinger)
	}
	servicekit.Then(servicekit.LingeringBatches, servicekit.ConsumerLinger(0))(&c)
	if c.Linger != 0 {
		t.Errorf("linger %v after ConsumerLinger(0)", c.Linger)
	}
}
