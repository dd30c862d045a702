package contracts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/shopmesh/shopmesh/outbox"
)

// services are the twelve services of DESIGN.md §2.
var services = []string{
	"analytics", "cart", "catalog", "customer", "inventory", "invoice",
	"loyalty", "notification", "order", "payment", "shipping", "user",
}

func TestCatalogueHasTheJourneysEvents(t *testing.T) {
	for _, name := range []string{
		TypeUserRegisteredV1, TypeUserAddressChangedV1, TypeUserDeactivatedV1,
		TypeProductCreatedV1, TypeProductUpdatedV1, TypePriceChangedV1,
		TypeStockReservedV1, TypeStockReservationFailedV1, TypeStockReleasedV1,
		TypeStockCommittedV1, TypeStockReturnedV1, TypeStockAdjustedV1, TypeLowStockV1,
		TypeCartCheckedOutV1,
		TypeOrderPlacedV1, TypeOrderPaymentRequestedV1, TypeOrderConfirmedV1,
		TypeOrderCancelledV1, TypeOrderRefundRequestedV1, TypeOrderShippedV1,
		TypeOrderDeliveredV1, TypeOrderCompletedV1, TypeOrderPaymentTimedOutV1,
		TypePaymentAuthorizedV1, TypePaymentDeclinedV1, TypePaymentRefundedV1,
		TypeShipmentCreatedV1, TypeShipmentDispatchedV1, TypeShipmentDeliveredV1, TypeShipmentFailedV1,
		TypeInvoiceIssuedV1, TypeCreditNoteIssuedV1,
		TypePointsAwardedV1, TypeEnrolmentBonusFailedV1, TypeLoyaltyEnrolledV1, TypeEnrolmentRolledBackV1,
		TypeNotificationSentV1,
	} {
		if _, err := Lookup(name); err != nil {
			t.Errorf("Lookup(%q): %v", name, err)
		}
	}
}

func TestRegistryEntries(t *testing.T) {
	all := Registry()
	if len(all) == 0 {
		t.Fatal("Registry() is empty")
	}
	if !slices.IsSortedFunc(all, func(a, b EventType) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("Registry() is not sorted by name")
	}
	for _, e := range all {
		producer, err := outbox.ProducerOf(e.Name)
		if err != nil {
			t.Errorf("%s: outbox rejects the name: %v", e.Name, err)
		}
		if e.Producer != producer {
			t.Errorf("%s: Producer = %q, want the name's prefix %q", e.Name, e.Producer, producer)
		}
		if want := fmt.Sprintf(".v%d", e.Version); !strings.HasSuffix(e.Name, want) {
			t.Errorf("%s: Version = %d, name does not end in %q", e.Name, e.Version, want)
		}
		if len(e.Consumers) == 0 {
			t.Errorf("%s: no consumers", e.Name)
		}
		if !slices.IsSorted(e.Consumers) || len(slices.Compact(slices.Clone(e.Consumers))) != len(e.Consumers) {
			t.Errorf("%s: Consumers = %v, want sorted and unique", e.Name, e.Consumers)
		}
		for _, s := range append([]string{e.Producer}, e.Consumers...) {
			if !slices.Contains(services, s) {
				t.Errorf("%s: %q is not a shopmesh service", e.Name, s)
			}
		}
		if e.Description == "" || len(e.Schema) == 0 || len(e.Example) == 0 {
			t.Errorf("%s: missing description, schema or example", e.Name)
		}
		if e.New == nil {
			t.Errorf("%s: New is nil", e.Name)
		} else if v := reflect.TypeOf(e.New()); v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
			t.Errorf("%s: New() returns %v, want a pointer to a struct", e.Name, v)
		}
	}
}

func TestRegistryCannotBeChangedByCallers(t *testing.T) {
	e, err := Lookup(TypeOrderPlacedV1)
	if err != nil {
		t.Fatal(err)
	}
	e.Consumers[0] = "mallory"
	e.Schema[0] = 'x'
	again, err := Lookup(TypeOrderPlacedV1)
	if err != nil {
		t.Fatal(err)
	}
	if again.Consumers[0] == "mallory" || again.Schema[0] == 'x' {
		t.Error("changing a looked-up EventType changed the registry")
	}
}

func TestGoldenExamplesValidateAndRoundTrip(t *testing.T) {
	for _, e := range Registry() {
		if err := Validate(e.Name, e.Example); err != nil {
			t.Errorf("%s: golden example: %v", e.Name, err)
			continue
		}
		v := e.New()
		if err := Decode(e.Name, e.Example, v); err != nil {
			t.Errorf("%s: Decode(golden example): %v", e.Name, err)
			continue
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Errorf("%s: re-encode: %v", e.Name, err)
			continue
		}
		if got, want := generic(t, again), generic(t, e.Example); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: round trip through %T changed the payload\n got: %s\nwant: %s", e.Name, v, again, e.Example)
		}
	}
}

// TestStructsMatchSchemas catches drift between a Go struct and its schema:
// the same JSON fields at every depth, of matching JSON types, required in
// the schema exactly when the struct always encodes them.
func TestStructsMatchSchemas(t *testing.T) {
	for _, e := range Registry() {
		var schema map[string]any
		if err := json.Unmarshal(e.Schema, &schema); err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		defs, _ := schema["$defs"].(map[string]any)
		matchSchema(t, e.Name, reflect.TypeOf(e.New()).Elem(), schema, defs)
	}
}

func matchSchema(t *testing.T, where string, typ reflect.Type, node, defs map[string]any) {
	t.Helper()
	if ref, ok := node["$ref"].(string); ok {
		node, _ = defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		if node == nil {
			t.Errorf("%s: unresolved $ref %q", where, ref)
			return
		}
	}
	want := map[reflect.Kind]string{
		reflect.String: "string", reflect.Bool: "boolean",
		reflect.Int: "integer", reflect.Int32: "integer", reflect.Int64: "integer",
		reflect.Slice: "array", reflect.Struct: "object",
	}[typ.Kind()]
	if typ == reflect.TypeFor[time.Time]() {
		want = "string"
		if node["format"] != "date-time" {
			t.Errorf("%s: time.Time field without format date-time", where)
		}
	}
	if got := node["type"]; got != want {
		t.Errorf("%s: schema type %v, Go type %v wants %q", where, got, typ, want)
		return
	}
	switch {
	case typ.Kind() == reflect.Slice:
		items, _ := node["items"].(map[string]any)
		matchSchema(t, where+"[]", typ.Elem(), items, defs)
	case typ.Kind() == reflect.Struct && typ != reflect.TypeFor[time.Time]():
		props, _ := node["properties"].(map[string]any)
		required := map[string]bool{}
		for _, r := range node["required"].([]any) {
			required[r.(string)] = true
		}
		seen := map[string]bool{}
		for f := range typ.Fields() {
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "" || name == "-" {
				t.Errorf("%s: field %s needs an explicit json name", where, f.Name)
				continue
			}
			seen[name] = true
			prop, ok := props[name].(map[string]any)
			if !ok {
				t.Errorf("%s: Go field %q is not in the schema", where, name)
				continue
			}
			optional := strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
			if required[name] == optional {
				t.Errorf("%s.%s: required in schema = %v, but omitted when empty in Go = %v", where, name, required[name], optional)
			}
			matchSchema(t, where+"."+name, f.Type, prop, defs)
		}
		for name := range props {
			if !seen[name] {
				t.Errorf("%s: schema property %q has no Go field", where, name)
			}
		}
	}
}

func TestValidateRejectsDuplicateAndCaseVariantKeys(t *testing.T) {
	placed := example(t, TypeOrderPlacedV1)
	tests := []struct {
		name    string
		typ     string
		payload string
		field   string
	}{
		{"duplicate at top", TypeOrderPlacedV1, `{"order_id":"0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90",` + placed[1:], "/order_id"},
		{"duplicate in a line", TypeOrderPlacedV1, strings.Replace(placed, `"quantity":2`, `"quantity":2,"quantity":200`, 1), "/lines/0/quantity"},
		{"case variant at top", TypeOrderPlacedV1, `{"Order_ID":"0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90",` + placed[1:], "/order_id"},
		{"case variant in a line", TypeOrderPlacedV1, strings.Replace(placed, `"quantity":2`, `"quantity":2,"QUANTITY":200`, 1), "/lines/0/QUANTITY"},
		{"unicode case variant", TypeProductUpdatedV1, `{"ſku":"X",` + example(t, TypeProductUpdatedV1)[1:], "/sku"},
		{"kelvin sign", TypeProductUpdatedV1, "{\"s\u212Au\":\"X\"," + example(t, TypeProductUpdatedV1)[1:], "/sku"},
		{"optional field in another case", TypeProductUpdatedV1, `{"Description":"smuggled",` + example(t, TypeProductUpdatedV1)[1:], "/Description"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.typ, []byte(tt.payload))
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Validate = %v, want a *ValidationError", err)
			}
			if !slices.Contains(verr.Fields(), tt.field) {
				t.Errorf("Validate = %v, want a problem at %s", err, tt.field)
			}
			if err := Decode(tt.typ, []byte(tt.payload), new(map[string]any)); err == nil {
				t.Error("Decode accepted the payload")
			}
		})
	}
}

func TestValidateNamesTheFieldAtFault(t *testing.T) {
	placed := example(t, TypeOrderPlacedV1)
	cancelled := example(t, TypeOrderCancelledV1)
	tests := []struct {
		name    string
		typ     string
		payload string
		fields  []string
	}{
		{"wrong type", TypeOrderPlacedV1, strings.Replace(placed, `"quantity":2`, `"quantity":"2"`, 1), []string{"/lines/0/quantity"}},
		{"below minimum", TypeOrderPlacedV1, strings.Replace(placed, `"quantity":2`, `"quantity":0`, 1), []string{"/lines/0/quantity"}},
		{"not an integer", TypeOrderPlacedV1, strings.Replace(placed, `"amount_minor":7490`, `"amount_minor":74.9`, 1), []string{"/total/amount_minor"}},
		{"missing required", TypeOrderPlacedV1, strings.Replace(placed, `"total":{"amount_minor":7490,"currency":"EUR"}`, `"total":{"amount_minor":7490}`, 1), []string{"/total/currency"}},
		{"two fields", TypeOrderPlacedV1, strings.Replace(strings.Replace(placed, `"country":"GB"`, `"country":"Great Britain"`, 1), `"sku":"CUP-ESP-01"`, `"sku":""`, 1), []string{"/lines/0/sku", "/shipping_address/country"}},
		{"not a uuid", TypeOrderPlacedV1, strings.Replace(placed, `"order_id":"0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90"`, `"order_id":"42"`, 1), []string{"/order_id"}},
		{"enum", TypeOrderCancelledV1, strings.Replace(cancelled, `"reason":"undeliverable"`, `"reason":"bored"`, 1), []string{"/reason"}},
		{"not an object", TypeOrderPlacedV1, `[]`, []string{""}},
		{"malformed", TypeOrderPlacedV1, `{"order_id":`, []string{""}},
		{"trailing data", TypeOrderPlacedV1, placed + `{}`, []string{""}},
		{"empty", TypeOrderPlacedV1, ``, []string{""}},
		{"too deep", TypeOrderPlacedV1, `{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.typ, []byte(tt.payload))
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Validate = %v, want a *ValidationError", err)
			}
			if got := verr.Fields(); !slices.Equal(got, tt.fields) {
				t.Errorf("Validate = %v\nfields %q, want %q", err, got, tt.fields)
			}
			if verr.Type != tt.typ || !strings.Contains(err.Error(), tt.typ) {
				t.Errorf("error %q does not name the event type %s", err, tt.typ)
			}
		})
	}
}

func TestAdditiveFieldsAreTolerated(t *testing.T) {
	placed := example(t, TypeOrderPlacedV1)
	payload := `{"coupon_code":"SPRING","gift":{"wrap":true},` + placed[1:]
	var got OrderPlacedV1
	if err := Decode(TypeOrderPlacedV1, []byte(payload), &got); err != nil {
		t.Fatalf("Decode with unknown optional fields: %v", err)
	}
	if got.Total.AmountMinor != 7490 {
		t.Errorf("Total.AmountMinor = %d, want 7490", got.Total.AmountMinor)
	}
}

func TestUnknownTypeOrVersion(t *testing.T) {
	payload := []byte(example(t, TypeOrderPlacedV1))
	for _, name := range []string{"order.placed.v9", "order.teleported.v1", "warehouse.placed.v1", "order.placed", ""} {
		if _, err := Lookup(name); !errors.Is(err, ErrUnknownType) {
			t.Errorf("Lookup(%q) = %v, want ErrUnknownType", name, err)
		}
		if err := Validate(name, payload); !errors.Is(err, ErrUnknownType) {
			t.Errorf("Validate(%q) = %v, want ErrUnknownType", name, err)
		}
		if err := Decode(name, payload, new(OrderPlacedV1)); !errors.Is(err, ErrUnknownType) {
			t.Errorf("Decode(%q) = %v, want ErrUnknownType", name, err)
		}
		if _, _, err := Upcast(name, payload); !errors.Is(err, ErrUnknownType) {
			t.Errorf("Upcast(%q) = %v, want ErrUnknownType", name, err)
		}
	}
	_, err := Lookup("order.placed.v9")
	if !strings.Contains(err.Error(), TypeOrderPlacedV1) {
		t.Errorf("error %q does not name the versions this build reads", err)
	}
}

func TestUpcastLeavesLatestVersionsAlone(t *testing.T) {
	for _, e := range Registry() {
		if _, err := Lookup(fmt.Sprintf("%s.v%d", family(e.Name), e.Version+1)); err == nil {
			continue // an older version: TestUpcastOlderVersionsReachTheLatest
		}
		gotType, gotPayload, err := Upcast(e.Name, e.Example)
		if err != nil {
			t.Errorf("Upcast(%s): %v", e.Name, err)
			continue
		}
		if gotType != e.Name || !bytes.Equal(gotPayload, e.Example) {
			t.Errorf("Upcast(%s) = %s %s, want it unchanged", e.Name, gotType, gotPayload)
		}
	}
}

func TestUpcastOlderVersionsReachTheLatest(t *testing.T) {
	older := 0
	for _, e := range Registry() {
		next := fmt.Sprintf("%s.v%d", family(e.Name), e.Version+1)
		if _, err := Lookup(next); err != nil {
			continue
		}
		older++
		gotType, gotPayload, err := Upcast(e.Name, e.Example)
		if err != nil {
			t.Errorf("Upcast(%s golden example): %v", e.Name, err)
			continue
		}
		if gotType == e.Name || family(gotType) != family(e.Name) {
			t.Errorf("Upcast(%s) = %s, want a later version of it", e.Name, gotType)
		}
		if _, err := Lookup(fmt.Sprintf("%s.v%d", family(gotType), versionOf(t, gotType)+1)); err == nil {
			t.Errorf("Upcast(%s) stopped at %s, which is not the latest version", e.Name, gotType)
		}
		latest, err := Lookup(gotType)
		if err != nil {
			t.Errorf("Upcast(%s) = %s, not a registered type: %v", e.Name, gotType, err)
			continue
		}
		if err := Decode(gotType, gotPayload, latest.New()); err != nil {
			t.Errorf("Upcast(%s) gives a payload the latest struct cannot decode: %v", e.Name, err)
		}
	}
	if older == 0 {
		t.Fatal("no registered type has a later version; the test checked nothing") // order.placed.v1 has v2
	}
}

func versionOf(t *testing.T, name string) int {
	t.Helper()
	e, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return e.Version
}

// The tests below run the registry on a made-up event with two versions,
// so that they do not depend on the real catalogue's history.

func demoFiles() fstest.MapFS {
	schema := func(name, prop string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(`{
			"$schema": "https://json-schema.org/draft/2020-12/schema",
			"$id": "urn:shopmesh:event:` + name + `", "title": "` + name + `",
			"description": "A thing happened.", "type": "object", "required": ["thing_id", "` + prop + `"],
			"properties": {"thing_id": {"type": "string"}, "` + prop + `": {"type": "integer", "minimum": 1}}}`)}
	}
	return fstest.MapFS{
		"schemas/demo.thing_done.v1.json":  schema("demo.thing_done.v1", "qty"),
		"examples/demo.thing_done.v1.json": {Data: []byte(`{"thing_id":"a","qty":2}`)},
		"schemas/demo.thing_done.v2.json":  schema("demo.thing_done.v2", "quantity"),
		"examples/demo.thing_done.v2.json": {Data: []byte(`{"thing_id":"a","quantity":2}`)},
	}
}

func demoSpecs() []spec {
	newMap := func() any { return new(map[string]any) }
	return []spec{
		{"demo.thing_done.v1", "demo", newMap, []string{"analytics"}},
		{"demo.thing_done.v2", "demo", newMap, []string{"analytics"}},
	}
}

// renameQty is the v1 → v2 step: qty was renamed quantity.
func renameQty(payload []byte) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, err
	}
	m["quantity"] = m["qty"]
	delete(m, "qty")
	return json.Marshal(m)
}

func TestUpcastRunsTheChain(t *testing.T) {
	r, err := newRegistry(demoFiles(), demoSpecs(), []upcaster{{"demo.thing_done.v1", "demo.thing_done.v2", renameQty}})
	if err != nil {
		t.Fatal(err)
	}
	gotType, gotPayload, err := r.upcast("demo.thing_done.v1", []byte(`{"thing_id":"a","qty":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"quantity":2,"thing_id":"a"}`; gotType != "demo.thing_done.v2" || string(gotPayload) != want {
		t.Errorf("upcast = %s %s, want demo.thing_done.v2 %s", gotType, gotPayload, want)
	}
	if _, _, err := r.upcast("demo.thing_done.v1", []byte(`{"thing_id":"a","qty":0}`)); err == nil {
		t.Error("upcast accepted a v1 payload that breaks the v1 schema")
	}
}

func TestUpcastChecksWhatAStepProduces(t *testing.T) {
	broken := func([]byte) ([]byte, error) { return []byte(`{"thing_id":"a"}`), nil }
	r, err := newRegistry(demoFiles(), demoSpecs(), []upcaster{{"demo.thing_done.v1", "demo.thing_done.v2", broken}})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = r.upcast("demo.thing_done.v1", []byte(`{"thing_id":"a","qty":2}`))
	var verr *ValidationError
	if !errors.As(err, &verr) || verr.Type != "demo.thing_done.v2" {
		t.Errorf("upcast = %v, want a v2 validation error", err)
	}
}

func TestRegistryRefusesIncompleteOrInconsistentCatalogues(t *testing.T) {
	specs := demoSpecs()
	wrongProducer := slices.Clone(specs)
	wrongProducer[0].producer = "order"
	tests := []struct {
		name  string
		specs []spec
		ups   []upcaster
	}{
		{"a version without an upcaster", specs, nil},
		{"an upcaster going backwards", specs, []upcaster{{"demo.thing_done.v2", "demo.thing_done.v1", renameQty}}},
		{"a producer that is not the prefix", wrongProducer, []upcaster{{"demo.thing_done.v1", "demo.thing_done.v2", renameQty}}},
		{"a type without files", append(slices.Clone(specs), spec{"demo.other.v1", "demo", nil, nil}), []upcaster{{"demo.thing_done.v1", "demo.thing_done.v2", renameQty}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := newRegistry(demoFiles(), tt.specs, tt.ups); err == nil {
				t.Error("newRegistry succeeded")
			}
		})
	}
}

// example returns the golden example of eventType compacted to one line.
func example(t *testing.T, eventType string) string {
	t.Helper()
	e, err := Lookup(eventType)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, e.Example); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func generic(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}
