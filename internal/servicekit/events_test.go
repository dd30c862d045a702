package servicekit_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
)

// The consumer the services pass to Subscribe.
var _ servicekit.Registrar = (*outbox.Consumer)(nil)

// registrar records what Subscribe registers.
type registrar map[string]outbox.Handler

func (r registrar) Handle(eventType string, h outbox.Handler) error {
	r[eventType] = h
	return nil
}

// call is one EventHandler invocation.
type call struct {
	msgType string
	payload []byte
}

// inventoryHandlers are handlers for every type inventory consumes, keyed
// by latest version, recording their calls. Inventory reads both versions
// of order.placed, so it exercises the upcast.
func inventoryHandlers(calls *[]call) map[string]servicekit.EventHandler {
	record := func(_ context.Context, _ pgx.Tx, msg outbox.Message, payload []byte) error {
		*calls = append(*calls, call{msg.Type, payload})
		return nil
	}
	return map[string]servicekit.EventHandler{
		contracts.TypeProductCreatedV1: record, contracts.TypeProductUpdatedV1: record,
		contracts.TypeOrderPlacedV2: record, contracts.TypeOrderConfirmedV1: record,
		contracts.TypeOrderCancelledV1: record, contracts.TypeLowStockV1: record,
	}
}

func example(t *testing.T, eventType string) []byte {
	t.Helper()
	et, err := contracts.Lookup(eventType)
	if err != nil {
		t.Fatal(err)
	}
	return et.Example
}

func TestConsumesListsEveryVersion(t *testing.T) {
	got := servicekit.Consumes("inventory")
	for _, want := range []string{contracts.TypeOrderPlacedV1, contracts.TypeOrderPlacedV2, contracts.TypeLowStockV1} {
		if !slices.Contains(got, want) {
			t.Errorf("Consumes(inventory) = %v, want it to hold %s", got, want)
		}
	}
	if got := servicekit.Consumes("no_such_service"); len(got) != 0 {
		t.Errorf("Consumes(no_such_service) = %v, want none", got)
	}
}

func TestSubscribeBindsEveryListedVersion(t *testing.T) {
	var calls []call
	r := registrar{}
	if err := servicekit.Subscribe(r, "inventory", inventoryHandlers(&calls)); err != nil {
		t.Fatalf("Subscribe() = %v", err)
	}
	want := servicekit.Consumes("inventory")
	slices.Sort(want)
	if got := slices.Sorted(maps.Keys(r)); !slices.Equal(got, want) {
		t.Fatalf("registered %v, want %v", got, want)
	}
}

func TestSubscribeUpcastsToTheLatestHandler(t *testing.T) {
	var calls []call
	r := registrar{}
	if err := servicekit.Subscribe(r, "inventory", inventoryHandlers(&calls)); err != nil {
		t.Fatal(err)
	}
	msg := outbox.Message{ID: "m1", Type: contracts.TypeOrderPlacedV1, Payload: example(t, contracts.TypeOrderPlacedV1)}
	if err := r[contracts.TypeOrderPlacedV1](context.Background(), nil, msg); err != nil {
		t.Fatalf("handler(order.placed.v1) = %v", err)
	}
	if len(calls) != 1 {
		t.Fatalf("handler called %d times, want 1", len(calls))
	}
	if calls[0].msgType != contracts.TypeOrderPlacedV1 {
		t.Errorf("handler saw message type %s, want the original %s", calls[0].msgType, contracts.TypeOrderPlacedV1)
	}
	var v2 contracts.OrderPlacedV2
	if err := contracts.Decode(contracts.TypeOrderPlacedV2, calls[0].payload, &v2); err != nil {
		t.Errorf("payload is not order.placed.v2: %v\n%s", err, calls[0].payload)
	}
}

func TestSubscribeDeadLettersWhatCannotBeUpcast(t *testing.T) {
	var calls []call
	r := registrar{}
	if err := servicekit.Subscribe(r, "inventory", inventoryHandlers(&calls)); err != nil {
		t.Fatal(err)
	}
	msg := outbox.Message{ID: "m1", Type: contracts.TypeOrderPlacedV1, Payload: json.RawMessage(`{"order_id": 7}`)}
	err := r[contracts.TypeOrderPlacedV1](context.Background(), nil, msg)
	if !outbox.IsPermanent(err) {
		t.Errorf("handler(invalid payload) = %v, want a permanent error", err)
	}
	if len(calls) != 0 {
		t.Errorf("handler called %d times with an invalid payload, want 0", len(calls))
	}
}

func TestSubscribeRefusesHandlersThatDisagreeWithTheRegistry(t *testing.T) {
	tests := []struct {
		name    string
		change  func(map[string]servicekit.EventHandler)
		wantErr string
	}{
		{"listed type without handler", func(h map[string]servicekit.EventHandler) {
			delete(h, contracts.TypeLowStockV1)
		}, "has no handler for " + contracts.TypeLowStockV1},
		{"handler for an older version only", func(h map[string]servicekit.EventHandler) {
			h[contracts.TypeOrderPlacedV1] = h[contracts.TypeOrderPlacedV2]
			delete(h, contracts.TypeOrderPlacedV2)
		}, "has no handler for " + contracts.TypeOrderPlacedV2},
		{"handler for an unlisted type", func(h map[string]servicekit.EventHandler) {
			h[contracts.TypePaymentAuthorizedV1] = h[contracts.TypeLowStockV1]
		}, "has a handler for " + contracts.TypePaymentAuthorizedV1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls []call
			handlers := inventoryHandlers(&calls)
			tt.change(handlers)
			err := servicekit.Subscribe(registrar{}, "inventory", handlers)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Subscribe() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSubscribeReturnsTheRegistrarsError(t *testing.T) {
	var calls []call
	refused := errors.New("refused")
	err := servicekit.Subscribe(refusing{refused}, "inventory", inventoryHandlers(&calls))
	if !errors.Is(err, refused) {
		t.Errorf("Subscribe() = %v, want %v", err, refused)
	}
}

type refusing struct{ err error }

func (r refusing) Handle(string, outbox.Handler) error { return r.err }
