package contracts

import (
	"encoding/json"
	"strings"
	"testing"
)

// The v1 golden example describes the same order as the v2 one, so lifting
// it must give exactly the v2 example.
func TestUpcastOrderPlacedV1GivesTheV2Example(t *testing.T) {
	v1, err := Lookup(TypeOrderPlacedV1)
	if err != nil {
		t.Fatal(err)
	}
	gotType, gotPayload, err := Upcast(TypeOrderPlacedV1, v1.Example)
	if err != nil {
		t.Fatal(err)
	}
	if gotType != TypeOrderPlacedV2 {
		t.Errorf("Upcast(%s) type = %s, want %s", TypeOrderPlacedV1, gotType, TypeOrderPlacedV2)
	}
	if got, want := compact(t, gotPayload), compact(t, []byte(example(t, TypeOrderPlacedV2))); got != want {
		t.Errorf("upcast v1 example =\n%s\nwant the v2 example\n%s", got, want)
	}
	var e OrderPlacedV2
	if err := Decode(gotType, gotPayload, &e); err != nil {
		t.Fatalf("decode the upcast payload: %v", err)
	}
}

func TestUpcastOrderPlacedV1Amounts(t *testing.T) {
	line := func(qty int, amount int64, currency string) string {
		return `{"product_id": "0190d6a2-0f11-7a22-8b33-4c44d55e66f7", "sku": "S", "name": "N", "quantity": ` +
			itoa(int64(qty)) + `, "unit_price": {"amount_minor": ` + itoa(amount) + `, "currency": "` + currency + `"}}`
	}
	v1 := func(total int64, lines ...string) []byte {
		return []byte(`{"order_id": "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90", "user_id": "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f50",
			"lines": [` + strings.Join(lines, ",") + `], "total": {"amount_minor": ` + itoa(total) + `, "currency": "GBP"},
			"shipping_address": {"name": "A", "line1": "1 Road", "city": "C", "postal_code": "P", "country": "GB"}}`)
	}
	t.Run("line totals, subtotal and a total beyond it", func(t *testing.T) {
		_, payload, err := Upcast(TypeOrderPlacedV1, v1(1000, line(3, 150, "GBP"), line(1, 400, "GBP"), line(2, 0, "GBP")))
		if err != nil {
			t.Fatal(err)
		}
		var e OrderPlacedV2
		if err := json.Unmarshal(payload, &e); err != nil {
			t.Fatal(err)
		}
		if e.Currency != "GBP" || len(e.Lines) != 3 {
			t.Fatalf("upcast = %s", payload)
		}
		for i, want := range []int64{450, 400, 0} {
			if got := e.Lines[i].LineTotal; got != (Money{want, "GBP"}) {
				t.Errorf("line %d total = %+v, want %d GBP", i, got, want)
			}
		}
		want := OrderTotals{Subtotal: Money{850, "GBP"}, Shipping: Money{150, "GBP"}, Total: Money{1000, "GBP"}}
		if e.Totals != want {
			t.Errorf("totals = %+v, want %+v", e.Totals, want)
		}
	})
	for _, tc := range []struct {
		name    string
		payload []byte
		want    string
	}{
		{"mixed currencies", v1(300, line(1, 300, "EUR")), "is in EUR"},
		{"a total below the lines", v1(299, line(1, 300, "GBP")), "below the sum"},
		{"a line total beyond any amount", v1(1, line(2147483647, 9007199254740991, "GBP")), "exceed"},
		{"a subtotal beyond any amount", v1(1, line(1, 9007199254740991, "GBP"), line(1, 1, "GBP")), "exceed"},
		{"a payload that is no v1", []byte(`{"order_id": "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90"}`), "invalid order.placed.v1 payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Upcast(TypeOrderPlacedV1, tc.payload)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Upcast = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// A v1 reader cannot read v2: the change is a genuine new version.
func TestOrderPlacedV2IsNotReadableAsV1(t *testing.T) {
	if err := Validate(TypeOrderPlacedV1, []byte(example(t, TypeOrderPlacedV2))); err == nil {
		t.Error("the v2 example validates as v1; v2 would not need to be a new version")
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func compact(t *testing.T, payload []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(payload, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
