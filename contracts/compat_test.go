package contracts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// TestCurrentSchemasAreCompatibleWithTheRelease is the compatibility gate
// over the real contracts: no schema may break its released version.
func TestCurrentSchemasAreCompatibleWithTheRelease(t *testing.T) {
	released, err := ReadReleased(os.DirFS("released"))
	if err != nil {
		t.Fatal(err)
	}
	if len(released) == 0 {
		t.Fatal("no release snapshot in contracts/released")
	}
	current := Current()
	changes, err := CheckCompatibility(released, current)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.Kind.Breaking() {
			t.Errorf("breaking change to a released schema: %s; publish it as a new version of the type", c)
		} else {
			t.Logf("warning: %s", c)
		}
	}
	for name, schema := range released {
		var head struct {
			Title string `json:"title"`
		}
		if err := json.Unmarshal(schema, &head); err != nil || head.Title != name {
			t.Errorf("released/%s.json: title %q, %v; want the type's name", name, head.Title, err)
		}
	}
	for name := range current {
		if _, ok := released[name]; !ok {
			t.Logf("%s is not released yet", name)
		}
	}
}

// editable is a copy of a real schema, decoded so a test can change it.
type editable map[string]any

// at walks down the schema by keys and returns the object there.
func (e editable) at(t *testing.T, keys ...string) map[string]any {
	t.Helper()
	cur := map[string]any(e)
	for _, k := range keys {
		next, ok := cur[k].(map[string]any)
		if !ok {
			t.Fatalf("schema has no object at %s", strings.Join(keys, "/"))
		}
		cur = next
	}
	return cur
}

func schemaCopy(t *testing.T, name string) editable {
	t.Helper()
	e, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(e.Schema))
	dec.UseNumber()
	var s editable
	if err := dec.Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func (e editable) bytes(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func removeString(list any, s string) []any {
	return slices.DeleteFunc(slices.Clone(list.([]any)), func(v any) bool { return v == s })
}

// where is a change the gate must report: its payload path and kind.
type where struct {
	Path string
	Kind ChangeKind
}

func (w where) String() string { return fmt.Sprintf("%s %s", w.Path, w.Kind) }

func found(changes []Change) []where {
	var out []where
	for _, c := range changes {
		out = append(out, where{c.Path, c.Kind})
	}
	return out
}

type gateCase struct {
	name   string
	schema string // the real schema the case edits a copy of
	// before edits the released copy, after the current copy (either may
	// be nil).
	before, after func(t *testing.T, s editable)
	drop          bool // the type is gone from current
}

// run compares the edited copies and returns what the gate reports.
func (tc gateCase) run(t *testing.T) []Change {
	t.Helper()
	released, current := schemaCopy(t, tc.schema), schemaCopy(t, tc.schema)
	if tc.before != nil {
		tc.before(t, released)
	}
	if tc.after != nil {
		tc.after(t, current)
	}
	cur := map[string][]byte{tc.schema: current.bytes(t)}
	if tc.drop {
		delete(cur, tc.schema)
	}
	changes, err := CheckCompatibility(map[string][]byte{tc.schema: released.bytes(t)}, cur)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.Type != tc.schema || c.Detail == "" {
			t.Errorf("change %+v: want the type's name and a detail", c)
		}
	}
	return changes
}

// TestGateDetectsBreakingChanges proves the gate: each case makes one
// breaking change to a copy of a real schema, and the gate must fail,
// naming the change's kind and the payload path it affects (every path, for
// a definition shared through $ref).
func TestGateDetectsBreakingChanges(t *testing.T) {
	const cancelled, checkout = TypeOrderCancelledV1, TypeCartCheckedOutV1
	tests := []struct {
		gateCase
		want []where
	}{
		{gateCase{name: "type removed", schema: cancelled, drop: true},
			[]where{{"$", ChangeTypeRemoved}}},
		{gateCase{name: "property removed", schema: cancelled, after: func(t *testing.T, s editable) {
			delete(s.at(t, "properties"), "user_id")
			s["required"] = removeString(s["required"], "user_id")
		}}, []where{{"$.user_id", ChangePropertyRemoved}}},
		{gateCase{name: "optional property removed", schema: cancelled, after: func(t *testing.T, s editable) {
			delete(s.at(t, "properties"), "compensations")
		}}, []where{{"$.compensations", ChangePropertyRemoved}}},
		{gateCase{name: "property removed from a $defs entry inside an array", schema: cancelled, after: func(t *testing.T, s editable) {
			line := s.at(t, "$defs", "line")
			delete(line["properties"].(map[string]any), "sku")
			line["required"] = removeString(line["required"], "sku")
		}}, []where{{"$.lines[*].sku", ChangePropertyRemoved}}},
		{gateCase{name: "property retyped in a shared definition", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "$defs", "money", "properties", "amount_minor")["type"] = "string"
		}}, []where{{"$.lines[*].unit_price.amount_minor", ChangeTypeChanged}, {"$.total.amount_minor", ChangeTypeChanged}}},
		{gateCase{name: "type narrowed", schema: cancelled, before: func(t *testing.T, s editable) {
			s.at(t, "properties", "order_id")["type"] = []any{"string", "null"}
		}}, []where{{"$.order_id", ChangeTypeChanged}}},
		{gateCase{name: "number narrowed to integer", schema: cancelled, before: func(t *testing.T, s editable) {
			s.at(t, "$defs", "line", "properties", "quantity")["type"] = "number"
		}}, []where{{"$.lines[*].quantity", ChangeTypeChanged}}},
		{gateCase{name: "array items retyped", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "properties", "lines")["items"] = map[string]any{"type": "string"}
		}}, []where{{"$.lines[*]", ChangeTypeChanged}}},
		{gateCase{name: "new required property", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "properties")["cancelled_by"] = map[string]any{"type": "string"}
			s["required"] = append(s["required"].([]any), "cancelled_by")
		}}, []where{{"$.cancelled_by", ChangeRequiredAdded}}},
		{gateCase{name: "optional property made required", schema: cancelled, after: func(t *testing.T, s editable) {
			s["required"] = append(s["required"].([]any), "compensations")
		}}, []where{{"$.compensations", ChangeRequiredAdded}}},
		{gateCase{name: "optional property made required in a nested definition", schema: cancelled, after: func(t *testing.T, s editable) {
			money := s.at(t, "$defs", "money")
			money["properties"].(map[string]any)["note"] = map[string]any{"type": "string"}
			money["required"] = append(money["required"].([]any), "note")
		}}, []where{{"$.lines[*].unit_price.note", ChangeRequiredAdded}, {"$.total.note", ChangeRequiredAdded}}},
		{gateCase{name: "required property made optional", schema: cancelled, after: func(t *testing.T, s editable) {
			s["required"] = removeString(s["required"], "total")
		}}, []where{{"$.total", ChangeRequiredRemoved}}},
		{gateCase{name: "enum narrowed", schema: cancelled, after: func(t *testing.T, s editable) {
			reason := s.at(t, "properties", "reason")
			reason["enum"] = removeString(reason["enum"], "payment_timeout")
		}}, []where{{"$.reason", ChangeEnumNarrowed}}},
		{gateCase{name: "enum of array items narrowed", schema: cancelled, after: func(t *testing.T, s editable) {
			items := s.at(t, "properties", "compensations", "items")
			items["enum"] = removeString(items["enum"], "cancel_shipment")
		}}, []where{{"$.compensations[*]", ChangeEnumNarrowed}}},
		{gateCase{name: "enum added", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "$defs", "money", "properties", "currency")["enum"] = []any{"EUR", "USD"}
		}}, []where{{"$.lines[*].unit_price.currency", ChangeEnumNarrowed}, {"$.total.currency", ChangeEnumNarrowed}}},
		{gateCase{name: "const added", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "properties", "reason")["const"] = "undeliverable"
		}}, []where{{"$.reason", ChangeEnumNarrowed}}},
		{gateCase{name: "minimum raised", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "$defs", "line", "properties", "quantity")["minimum"] = json.Number("2")
		}}, []where{{"$.lines[*].quantity", ChangeConstraintTightened}}},
		{gateCase{name: "exclusive minimum added", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "$defs", "money", "properties", "amount_minor")["exclusiveMinimum"] = json.Number("0")
		}}, []where{{"$.lines[*].unit_price.amount_minor", ChangeConstraintTightened}, {"$.total.amount_minor", ChangeConstraintTightened}}},
		{gateCase{name: "maximum lowered", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "$defs", "line", "properties", "quantity")["maximum"] = json.Number("1000")
		}}, []where{{"$.lines[*].quantity", ChangeConstraintTightened}}},
		{gateCase{name: "maxLength lowered", schema: checkout, after: func(t *testing.T, s editable) {
			s.at(t, "properties", "idempotency_key")["maxLength"] = json.Number("64")
		}}, []where{{"$.idempotency_key", ChangeConstraintTightened}}},
		{gateCase{name: "maxLength added", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "$defs", "line", "properties", "sku")["maxLength"] = json.Number("32")
		}}, []where{{"$.lines[*].sku", ChangeConstraintTightened}}},
		{gateCase{name: "minLength raised", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "$defs", "line", "properties", "name")["minLength"] = json.Number("3")
		}}, []where{{"$.lines[*].name", ChangeConstraintTightened}}},
		{gateCase{name: "minItems raised", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "properties", "lines")["minItems"] = json.Number("2")
		}}, []where{{"$.lines", ChangeConstraintTightened}}},
		{gateCase{name: "maxItems added", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "properties", "lines")["maxItems"] = json.Number("100")
		}}, []where{{"$.lines", ChangeConstraintTightened}}},
		{gateCase{name: "uniqueItems added", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "properties", "lines")["uniqueItems"] = true
		}}, []where{{"$.lines", ChangeConstraintTightened}}},
		{gateCase{name: "multipleOf added", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "$defs", "money", "properties", "amount_minor")["multipleOf"] = json.Number("5")
		}}, []where{{"$.lines[*].unit_price.amount_minor", ChangeConstraintTightened}, {"$.total.amount_minor", ChangeConstraintTightened}}},
		{gateCase{name: "pattern changed", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "$defs", "money", "properties", "currency")["pattern"] = "^(EUR|USD)$"
		}}, []where{{"$.lines[*].unit_price.currency", ChangeConstraintTightened}, {"$.total.currency", ChangeConstraintTightened}}},
		{gateCase{name: "pattern added", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "$defs", "line", "properties", "sku")["pattern"] = "^[A-Z0-9-]+$"
		}}, []where{{"$.lines[*].sku", ChangeConstraintTightened}}},
		{gateCase{name: "format added", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "$defs", "line", "properties", "sku")["format"] = "uuid"
		}}, []where{{"$.lines[*].sku", ChangeConstraintTightened}}},
		{gateCase{name: "format changed", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "properties", "order_id")["format"] = "uri"
		}}, []where{{"$.order_id", ChangeConstraintTightened}}},
		{gateCase{name: "additionalProperties turned false", schema: cancelled, after: func(t *testing.T, s editable) {
			s["additionalProperties"] = false
		}}, []where{{"$", ChangeConstraintTightened}}},
		{gateCase{name: "additionalProperties turned false in a nested definition", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "$defs", "money")["additionalProperties"] = false
		}}, []where{{"$.lines[*].unit_price", ChangeConstraintTightened}, {"$.total", ChangeConstraintTightened}}},
		{gateCase{name: "additionalProperties restricted to a type", schema: cancelled, after: func(t *testing.T, s editable) {
			s["additionalProperties"] = map[string]any{"type": "string"}
		}}, []where{{"$.*", ChangeTypeChanged}}},
		{gateCase{name: "$ref retargeted", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "properties", "total")["$ref"] = "#/$defs/line"
		}}, []where{{"$.total.amount_minor", ChangePropertyRemoved}, {"$.total.currency", ChangePropertyRemoved}, {"$.total.product_id", ChangeRequiredAdded}}},
		{gateCase{name: "$ref siblings tighten the target", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "properties", "total")["additionalProperties"] = false
		}}, []where{{"$.total", ChangeConstraintTightened}}},
		{gateCase{name: "keyword the gate does not analyse", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "properties", "user_id")["not"] = map[string]any{"const": "00000000-0000-0000-0000-000000000000"}
		}}, []where{{"$.user_id", ChangeUnsupported}}},
		{gateCase{name: "schema made false", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "properties")["compensations"] = false
		}}, []where{{"$.compensations", ChangeConstraintTightened}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changes := tt.run(t)
			if len(Breaking(changes)) == 0 {
				t.Fatalf("the gate passed a breaking change; it reported %v", changes)
			}
			got := found(changes)
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("the gate did not report %s; it reported %v", w, got)
				}
			}
		})
	}
}

// TestGatePassesCompatibleChanges: additive optional properties, loosened
// constraints and edited annotations pass; a widened enum, range or type
// passes with a warning.
func TestGatePassesCompatibleChanges(t *testing.T) {
	const cancelled, checkout = TypeOrderCancelledV1, TypeCartCheckedOutV1
	tests := []struct {
		gateCase
		want []where // the warnings
	}{
		{gateCase{name: "no change", schema: cancelled}, nil},
		{gateCase{name: "optional property added", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "properties")["note"] = map[string]any{"type": "string", "maxLength": json.Number("200")}
		}}, nil},
		{gateCase{name: "optional property added to a nested definition", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "$defs", "line", "properties")["variant"] = map[string]any{"type": "string"}
		}}, nil},
		{gateCase{name: "description edited", schema: cancelled, after: func(t *testing.T, s editable) {
			s["description"] = "Cancelled."
			s.at(t, "properties", "reason")["description"] = "Why."
		}}, nil},
		{gateCase{name: "maxLength raised", schema: checkout, after: func(t *testing.T, s editable) {
			s.at(t, "properties", "idempotency_key")["maxLength"] = json.Number("512")
		}}, nil},
		{gateCase{name: "minLength lowered", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "$defs", "line", "properties", "sku")["minLength"] = json.Number("0")
		}}, nil},
		{gateCase{name: "minItems dropped", schema: cancelled, after: func(t *testing.T, s editable) {
			delete(s.at(t, "properties", "lines"), "minItems")
		}}, nil},
		{gateCase{name: "pattern dropped", schema: cancelled, after: func(t *testing.T, s editable) {
			delete(s.at(t, "$defs", "money", "properties", "currency"), "pattern")
		}}, nil},
		{gateCase{name: "format dropped", schema: cancelled, after: func(t *testing.T, s editable) {
			delete(s.at(t, "properties", "order_id"), "format")
		}}, nil},
		{gateCase{name: "uniqueItems dropped", schema: cancelled, after: func(t *testing.T, s editable) {
			delete(s.at(t, "properties", "compensations"), "uniqueItems")
		}}, nil},
		{gateCase{name: "additionalProperties false dropped", schema: cancelled, before: func(t *testing.T, s editable) {
			s["additionalProperties"] = false
		}}, nil},
		{gateCase{name: "$ref inlined", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "properties")["total"] = s.at(t, "$defs", "money")
		}}, nil},
		{gateCase{name: "definition renamed", schema: cancelled, after: func(t *testing.T, s editable) {
			defs := s.at(t, "$defs")
			defs["amount"] = defs["money"]
			delete(defs, "money")
			s.at(t, "properties", "total")["$ref"] = "#/$defs/amount"
			s.at(t, "$defs", "line", "properties", "unit_price")["$ref"] = "#/$defs/amount"
		}}, nil},
		{gateCase{name: "enum widened", schema: cancelled, after: func(t *testing.T, s editable) {
			reason := s.at(t, "properties", "reason")
			reason["enum"] = append(reason["enum"].([]any), "fraud_suspected")
		}}, []where{{"$.reason", ChangeEnumWidened}}},
		{gateCase{name: "minimum lowered", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "$defs", "line", "properties", "quantity")["minimum"] = json.Number("0")
		}}, []where{{"$.lines[*].quantity", ChangeRangeWidened}}},
		{gateCase{name: "maximum dropped", schema: cancelled, after: func(t *testing.T, s editable) {
			delete(s.at(t, "$defs", "line", "properties", "quantity"), "maximum")
		}}, []where{{"$.lines[*].quantity", ChangeRangeWidened}}},
		{gateCase{name: "integer widened to number", schema: cancelled, after: func(t *testing.T, s editable) {
			s.at(t, "$defs", "line", "properties", "quantity")["type"] = "number"
		}}, []where{{"$.lines[*].quantity", ChangeTypeWidened}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changes := tt.run(t)
			if b := Breaking(changes); len(b) > 0 {
				t.Fatalf("the gate failed a compatible change: %v", b)
			}
			if got := found(changes); !slices.Equal(got, tt.want) {
				t.Errorf("warnings %v, want %v", got, tt.want)
			}
		})
	}
}

func TestGateIgnoresNewTypes(t *testing.T) {
	schema, err := Lookup(TypeOrderPlacedV1)
	if err != nil {
		t.Fatal(err)
	}
	changes, err := CheckCompatibility(map[string][]byte{}, map[string][]byte{"order.placed.v2": schema.Schema})
	if err != nil || len(changes) > 0 {
		t.Errorf("CheckCompatibility with only a new type = %v, %v; want nothing to report", changes, err)
	}
}

func TestGateEndsOnRecursiveSchemas(t *testing.T) {
	tree := func(nameSchema string) []byte {
		return []byte(`{"$ref": "#/$defs/node", "$defs": {"node": {"type": "object", "properties": {
			"name": ` + nameSchema + `, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}}}`)
	}
	changes, err := CheckCompatibility(
		map[string][]byte{"x.tree.v1": tree(`{"type": "string"}`)},
		map[string][]byte{"x.tree.v1": tree(`{"type": "string", "maxLength": 10}`)})
	if err != nil {
		t.Fatal(err)
	}
	if got := found(changes); !slices.Contains(got, where{"$.name", ChangeConstraintTightened}) {
		t.Errorf("changes %v, want $.name tightened", got)
	}
}

func TestGateRejectsInvalidJSON(t *testing.T) {
	_, err := CheckCompatibility(map[string][]byte{"x.y.v1": []byte(`{}`)}, map[string][]byte{"x.y.v1": []byte(`{`)})
	if err == nil || !strings.Contains(err.Error(), "x.y.v1") {
		t.Errorf("CheckCompatibility with a broken schema = %v, want an error naming the type", err)
	}
}

func TestReadReleased(t *testing.T) {
	got, err := ReadReleased(fstest.MapFS{
		"order.placed.v1.json": {Data: []byte(`{"title": "order.placed.v1"}`)},
		"README.md":            {Data: []byte("not a schema")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || string(got["order.placed.v1"]) != `{"title": "order.placed.v1"}` {
		t.Errorf("ReadReleased = %q, want the one schema by type name", got)
	}
}
