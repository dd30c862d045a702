package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/order/internal/domain"
)

// fakeSaga records what the handler asked of the application.
type fakeSaga struct {
	placed  []domain.Placement
	applied []domain.Reply
	ids     []domain.OrderID
	err     error
}

func (f *fakeSaga) Place(_ context.Context, p domain.Placement) error {
	f.placed = append(f.placed, p)
	return f.err
}

func (f *fakeSaga) Apply(_ context.Context, id domain.OrderID, r domain.Reply) error {
	f.ids, f.applied = append(f.ids, id), append(f.applied, r)
	return f.err
}

func handle(t *testing.T, saga *fakeSaga, eventType string, payload []byte) error {
	t.Helper()
	h := NewMessageHandler(func(pgx.Tx) Saga { return saga }, NewChanges())
	return h(context.Background(), nil, outbox.Message{ID: outbox.NewID(), Type: eventType, Payload: payload})
}

// Every handled type's golden example reaches the application as the
// matching placement or reply, for the order it names.
func TestGoldenExamplesBecomeReplies(t *testing.T) {
	t.Parallel()
	want := map[string]any{
		contracts.TypeCartCheckedOutV1:         domain.Placement{},
		contracts.TypeStockReservedV1:          domain.StockReserved{},
		contracts.TypeStockReservationFailedV1: domain.StockReservationFailed{},
		contracts.TypeStockReleasedV1:          domain.StockReleased{},
		contracts.TypeStockReturnedV1:          domain.StockReturned{},
		contracts.TypePaymentAuthorizedV1:      domain.PaymentAuthorized{},
		contracts.TypePaymentDeclinedV1:        domain.PaymentDeclined{},
		contracts.TypePaymentRefundedV1:        domain.PaymentRefunded{},
		contracts.TypeOrderPaymentTimedOutV1:   domain.PaymentTimedOut{},
		contracts.TypeShipmentCreatedV1:        domain.ShipmentCreated{},
		contracts.TypeShipmentDispatchedV1:     domain.ShipmentDispatched{},
		contracts.TypeShipmentDeliveredV1:      domain.ShipmentDelivered{},
		contracts.TypeShipmentFailedV1:         domain.ShipmentFailed{},
		contracts.TypeShipmentCancelledV1:      domain.ShipmentCancelled{},
	}
	if got := len(HandledTypes()); got != len(want) {
		t.Fatalf("%d handled types, want %d", got, len(want))
	}
	for _, typ := range HandledTypes() {
		et, err := contracts.Lookup(typ)
		if err != nil {
			t.Fatal(err)
		}
		var example struct {
			OrderID string `json:"order_id"`
		}
		if err := json.Unmarshal(et.Example, &example); err != nil {
			t.Fatal(err)
		}
		saga := &fakeSaga{}
		if err := handle(t, saga, typ, et.Example); err != nil {
			t.Errorf("%s: %v", typ, err)
			continue
		}
		switch w := want[typ].(type) {
		case domain.Placement:
			if len(saga.placed) != 1 || string(saga.placed[0].ID) != example.OrderID {
				t.Errorf("%s: placed %+v", typ, saga.placed)
			}
		default:
			if len(saga.applied) != 1 || string(saga.ids[0]) != example.OrderID {
				t.Errorf("%s: applied %v to %v", typ, saga.applied, saga.ids)
				continue
			}
			if gotT, wantT := typeName(saga.applied[0]), typeName(w); gotT != wantT {
				t.Errorf("%s: applied %s, want %s", typ, gotT, wantT)
			}
		}
	}
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

func TestFailuresAreClassified(t *testing.T) {
	t.Parallel()
	reserved, _ := contracts.Lookup(contracts.TypeStockReservedV1)
	tests := []struct {
		name      string
		typ       string
		payload   []byte
		sagaErr   error
		permanent bool
	}{
		{"unknown type", "inventory.stock_teleported.v1", reserved.Example, nil, true},
		{"a type the order service does not read", contracts.TypeStockCommittedV1, reserved.Example, nil, true},
		{"payload breaks the contract", contracts.TypeStockReservedV1, []byte(`{"order_id":"x"}`), nil, true},
		{"not JSON", contracts.TypeStockReservedV1, []byte(`{`), nil, true},
		{"unknown order", contracts.TypeStockReservedV1, reserved.Example, domain.ErrNotFound, true},
		{"invalid order", contracts.TypeStockReservedV1, reserved.Example, domain.ErrInvalidOrder, true},
		{"database trouble", contracts.TypeStockReservedV1, reserved.Example, errors.New("connection reset"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := handle(t, &fakeSaga{err: tc.sagaErr}, tc.typ, tc.payload)
			if err == nil {
				t.Fatal("no error")
			}
			if got := outbox.IsPermanent(err); got != tc.permanent {
				t.Errorf("permanent = %v, want %v (%v)", got, tc.permanent, err)
			}
		})
	}
}

func TestUpperCaseOrderIDsAreCanonical(t *testing.T) {
	t.Parallel()
	saga := &fakeSaga{}
	payload := []byte(`{"order_id":"0190D6A5-8A41-7C52-B3D4-2E5F6A7B8C90","lines":[{"product_id":"0190d6a6-0000-7000-8000-0000000000a1","quantity":1}]}`)
	if err := handle(t, saga, contracts.TypeStockReservedV1, payload); err != nil {
		t.Fatal(err)
	}
	if saga.ids[0] != "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90" {
		t.Errorf("order id %q, want lower case", saga.ids[0])
	}
}

// A saga step that succeeds wakes the reads waiting on its order; one
// that fails does not.
func TestASagaStepWakesTheReadsWaitingOnItsOrder(t *testing.T) {
	t.Parallel()
	reserved, _ := contracts.Lookup(contracts.TypeStockReservedV1)
	var example struct {
		OrderID domain.OrderID `json:"order_id"`
	}
	if err := json.Unmarshal(reserved.Example, &example); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sagaErr error
		woken   bool
	}{{nil, true}, {errors.New("database gone"), false}} {
		changes := NewChanges()
		changed, release := changes.watch(example.OrderID)
		h := NewMessageHandler(func(pgx.Tx) Saga { return &fakeSaga{err: c.sagaErr} }, changes)
		_ = h(context.Background(), nil, outbox.Message{ID: outbox.NewID(), Type: contracts.TypeStockReservedV1, Payload: reserved.Example})
		select {
		case <-changed:
			if !c.woken {
				t.Errorf("saga error %v: the waiting read was woken", c.sagaErr)
			}
		default:
			if c.woken {
				t.Errorf("saga error %v: the waiting read was not woken", c.sagaErr)
			}
		}
		release()
	}
}
