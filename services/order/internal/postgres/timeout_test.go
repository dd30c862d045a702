package postgres

import (
	"testing"

	"github.com/google/uuid"

	"github.com/shopmesh/shopmesh/services/order/internal/domain"
)

// A payment timeout's id is a canonical UUIDv7 like every message id, the
// same every time for one order (so the order can withdraw it), different
// for another, and it carries its order's timestamp.
func TestPaymentTimeoutIDs(t *testing.T) {
	a, b := domain.OrderID("01a2023d-2d96-7738-9e40-b9d0f0f7cdaa"), domain.OrderID("01a2023d-2d96-7738-9e40-b9d0f0f7cdab")
	idA, err := paymentTimeoutID(a)
	if err != nil {
		t.Fatal(err)
	}
	u, err := uuid.Parse(idA)
	if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 || u.String() != idA {
		t.Fatalf("%q is not a canonical UUIDv7 (%v)", idA, err)
	}
	if again, _ := paymentTimeoutID(a); again != idA {
		t.Errorf("two ids for one order: %s, %s", idA, again)
	}
	if idB, _ := paymentTimeoutID(b); idB == idA {
		t.Errorf("orders %s and %s share the timeout id %s", a, b, idA)
	}
	if idA == string(a) || idA[:13] != string(a)[:13] {
		t.Errorf("id %s: want the order's timestamp and other bits than the order id %s", idA, a)
	}
	if _, err := paymentTimeoutID("not-a-uuid"); err == nil {
		t.Error("an order id that is no UUID gave a timeout id")
	}
}
