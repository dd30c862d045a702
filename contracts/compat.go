package contracts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"math/big"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ChangeKind names one sort of schema change the compatibility gate knows.
type ChangeKind string

// Breaking kinds: a change of one of these kinds inside a version fails the
// gate, because an event valid under the released schema would no longer be
// valid, or a field consumers rely on would no longer be there.
const (
	// ChangeTypeRemoved: a released type is gone from the registry.
	ChangeTypeRemoved ChangeKind = "type_removed"
	// ChangePropertyRemoved: a property is no longer described.
	ChangePropertyRemoved ChangeKind = "property_removed"
	// ChangeRequiredAdded: a new required property, or an optional one made
	// required.
	ChangeRequiredAdded ChangeKind = "required_added"
	// ChangeRequiredRemoved: a required property made optional; a consumer built
	// against the released schema relies on it being there.
	ChangeRequiredRemoved ChangeKind = "required_removed"
	// ChangeTypeChanged: the JSON type changed or narrowed (number to integer).
	ChangeTypeChanged ChangeKind = "type_changed"
	// ChangeEnumNarrowed: an enum (or const) value is no longer allowed, or an
	// enum or const was added.
	ChangeEnumNarrowed ChangeKind = "enum_narrowed"
	// ChangeConstraintTightened: a bound raised or lowered the strict way (minimum,
	// maximum, minLength, maxLength, minItems, ...), a pattern or format
	// added or changed, uniqueItems added, additionalProperties restricted.
	ChangeConstraintTightened ChangeKind = "constraint_tightened"
	// ChangeUnsupported: a keyword the gate does not analyse (oneOf, not,
	// patternProperties, ...) changed; it cannot tell whether that is safe.
	ChangeUnsupported ChangeKind = "unsupported_change"
)

// Warning kinds: the schema still accepts every released event, but a
// consumer that switches on the value may meet one it does not expect (see
// the package documentation). The gate reports them and passes.
const (
	// ChangeEnumWidened: an enum gained a value or was dropped.
	ChangeEnumWidened ChangeKind = "enum_widened"
	// ChangeRangeWidened: a numeric minimum lowered or maximum raised or dropped.
	ChangeRangeWidened ChangeKind = "range_widened"
	// ChangeTypeWidened: the JSON type accepts more (integer to number, or null).
	ChangeTypeWidened ChangeKind = "type_widened"
)

// Breaking reports whether a change of kind k fails the gate.
func (k ChangeKind) Breaking() bool {
	switch k {
	case ChangeEnumWidened, ChangeRangeWidened, ChangeTypeWidened:
		return false
	}
	return true
}

// Change is one difference between a type's released schema and its
// current one that matters to producers or consumers. Additive optional
// properties, loosened length, pattern and format constraints and edited
// descriptions are not changes in this sense.
type Change struct {
	// Type is the event type.
	Type string
	// Path is where in the payload the change applies, in JSONPath
	// notation: "$" is the payload, "$.lines[*].unit_price.currency" a
	// field of every line. A definition shared through $ref is reported at
	// every place that uses it.
	Path string
	Kind ChangeKind
	// Detail says what changed, in words.
	Detail string
}

func (c Change) String() string {
	return fmt.Sprintf("%s %s: %s: %s", c.Type, c.Path, c.Kind, c.Detail)
}

// Breaking returns the changes that fail the gate.
func Breaking(changes []Change) []Change {
	var out []Change
	for _, c := range changes {
		if c.Kind.Breaking() {
			out = append(out, c)
		}
	}
	return out
}

// ReadReleased reads a release snapshot, the <type>.json files at the
// root of fsys (such as os.DirFS("contracts/released")), by type name.
func ReadReleased(fsys fs.FS) (map[string][]byte, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(names))
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		out[strings.TrimSuffix(path.Base(name), ".json")] = b
	}
	return out, nil
}

// Current returns the current schema of every type in the registry, by
// type name, in the form CheckCompatibility takes.
func Current() map[string][]byte {
	out := map[string][]byte{}
	for _, e := range Registry() {
		out[e.Name] = e.Schema
	}
	return out
}

// CheckCompatibility compares each type's current schema with its released
// one and returns what changed, sorted by type, path and kind; Breaking
// filters the changes that fail the gate. A type only in current is new
// and has nothing to be compatible with. An error means a schema is not
// valid JSON.
//
// The comparison follows properties, items, additionalProperties and
// $ref (into $defs or anywhere else in the same schema) to any depth,
// reporting each change at the payload path it affects.
func CheckCompatibility(released, current map[string][]byte) ([]Change, error) {
	var changes []Change
	for _, name := range slices.Sorted(maps.Keys(released)) {
		cur, ok := current[name]
		if !ok {
			changes = append(changes, Change{Type: name, Path: "$", Kind: ChangeTypeRemoved,
				Detail: "the released type is gone; consumers must read every version still in the retained log"})
			continue
		}
		r, err := decodeSchema(released[name])
		if err != nil {
			return nil, fmt.Errorf("released schema of %s: %w", name, err)
		}
		c, err := decodeSchema(cur)
		if err != nil {
			return nil, fmt.Errorf("current schema of %s: %w", name, err)
		}
		d := &differ{typ: name, rRoot: r, cRoot: c, onPath: map[[2]string]bool{}}
		d.compare("$", r, c, "", "")
		changes = append(changes, d.changes...)
	}
	slices.SortStableFunc(changes, func(a, b Change) int {
		if n := strings.Compare(a.Type, b.Type); n != 0 {
			return n
		}
		if n := strings.Compare(a.Path, b.Path); n != 0 {
			return n
		}
		return strings.Compare(string(a.Kind), string(b.Kind))
	})
	return changes, nil
}

func decodeSchema(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// differ compares one type's released schema (r) with its current one (c).
type differ struct {
	typ          string
	rRoot, cRoot any
	// onPath holds the (released, current) schema locations being compared
	// further up, so a recursive schema ends instead of looping.
	onPath  map[[2]string]bool
	changes []Change
}

func (d *differ) report(path string, kind ChangeKind, format string, args ...any) {
	d.changes = append(d.changes, Change{Type: d.typ, Path: path, Kind: kind, Detail: fmt.Sprintf(format, args...)})
}

// annotations never change what validates.
var annotations = map[string]bool{
	"title": true, "description": true, "$comment": true, "examples": true, "default": true,
	"deprecated": true, "readOnly": true, "writeOnly": true, "$id": true, "$defs": true, "definitions": true,
}

// analysed are the keywords compare understands; any other keyword is
// compared for equality and reported as ChangeUnsupported when it differs.
var analysed = map[string]bool{
	"type": true, "enum": true, "const": true, "properties": true, "required": true,
	"additionalProperties": true, "items": true, "minimum": true, "maximum": true,
	"exclusiveMinimum": true, "exclusiveMaximum": true, "multipleOf": true,
	"minLength": true, "maxLength": true, "minItems": true, "maxItems": true,
	"minProperties": true, "maxProperties": true, "uniqueItems": true, "pattern": true, "format": true,
}

// compare reports how the current schema c differs from the released
// schema r at payload path p. rLoc and cLoc are their JSON Pointers in
// their documents ("" is the root).
func (d *differ) compare(p string, r, c any, rLoc, cLoc string) {
	r, rLoc = d.deref(d.rRoot, r, rLoc, map[string]bool{})
	c, cLoc = d.deref(d.cRoot, c, cLoc, map[string]bool{})
	key := [2]string{rLoc, cLoc}
	if d.onPath[key] {
		return
	}
	d.onPath[key] = true
	defer delete(d.onPath, key)

	rs, cs := asSchema(r), asSchema(c)
	switch {
	case rs == nil || cs == nil:
		// Not schemas (a broken ref); only equality can be judged.
		if !reflect.DeepEqual(r, c) {
			d.report(p, ChangeUnsupported, "the schema changed and could not be analysed")
		}
		return
	case isFalse(rs):
		return // nothing was valid; anything is a widening
	case isFalse(cs):
		d.report(p, ChangeConstraintTightened, "the schema now rejects every value")
		return
	}

	d.compareTypes(p, rs, cs)
	d.compareEnums(p, rs, cs)
	d.compareBounds(p, rs, cs)
	d.compareObjects(p, rs, cs, rLoc, cLoc)
	d.compareItems(p, rs, cs, rLoc, cLoc)

	for _, k := range slices.Sorted(maps.Keys(unionKeys(rs, cs))) {
		if annotations[k] || analysed[k] {
			continue
		}
		if !reflect.DeepEqual(rs[k], cs[k]) {
			d.report(p, ChangeUnsupported, "keyword %s changed; the gate cannot judge it, so publish a new version", k)
		}
	}
}

// deref follows $ref from node until it reaches a schema without one,
// returning it with its location. Annotations beside a $ref are dropped;
// other keywords beside it apply together with the target's, so they are
// merged into it, unless both set the same keyword differently: then the
// node is returned as it is and a changed $ref shows as ChangeUnsupported.
func (d *differ) deref(root, node any, loc string, seen map[string]bool) (any, string) {
	s := asSchema(node)
	ref, ok := s["$ref"].(string)
	if !ok {
		return node, loc
	}
	target, ok := strings.CutPrefix(ref, "#")
	if !ok || seen[target] {
		return node, loc
	}
	seen[target] = true
	resolved, ok := resolvePointer(root, target)
	if !ok {
		return node, loc
	}
	resolved, rloc := d.deref(root, resolved, target, seen)
	rs := asSchema(resolved)
	if rs == nil {
		return node, loc
	}
	var merged map[string]any
	for k, v := range s {
		if k == "$ref" || annotations[k] {
			continue
		}
		if tv, ok := rs[k]; ok && !reflect.DeepEqual(tv, v) {
			return node, loc
		}
		if merged == nil {
			merged = maps.Clone(rs)
		}
		merged[k] = v
	}
	if merged == nil {
		return resolved, rloc
	}
	return merged, loc + "+" + rloc
}

// resolvePointer resolves a JSON Pointer (RFC 6901) in doc.
func resolvePointer(doc any, ptr string) (any, bool) {
	if ptr == "" {
		return doc, true
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, false
	}
	cur := doc
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[tok]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// asSchema returns a schema as an object: true is {}, false is
// {"not": {}}; anything else that is not an object is nil.
func asSchema(v any) map[string]any {
	switch v := v.(type) {
	case map[string]any:
		return v
	case bool:
		if v {
			return map[string]any{}
		}
		return map[string]any{"not": map[string]any{}}
	}
	return nil
}

func isFalse(s map[string]any) bool {
	not, ok := s["not"].(map[string]any)
	return ok && len(not) == 0
}

func unionKeys(a, b map[string]any) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

var jsonTypes = []string{"array", "boolean", "integer", "null", "number", "object", "string"}

// typeSet returns the JSON types a schema's "type" allows; none means all.
func typeSet(s map[string]any) map[string]bool {
	out := map[string]bool{}
	switch t := s["type"].(type) {
	case string:
		out[t] = true
	case []any:
		for _, v := range t {
			if name, ok := v.(string); ok {
				out[name] = true
			}
		}
	default:
		for _, name := range jsonTypes {
			out[name] = true
		}
	}
	if out["number"] {
		out["integer"] = true // every integer is a number
	}
	return out
}

func (d *differ) compareTypes(p string, r, c map[string]any) {
	rt, ct := typeSet(r), typeSet(c)
	var lost, gained []string
	for _, t := range jsonTypes {
		switch {
		case rt[t] && !ct[t]:
			lost = append(lost, t)
		case !rt[t] && ct[t]:
			gained = append(gained, t)
		}
	}
	switch {
	case len(lost) > 0:
		d.report(p, ChangeTypeChanged, "type was %s, is %s", typeString(r), typeString(c))
	case len(gained) > 0:
		d.report(p, ChangeTypeWidened, "type was %s, is %s", typeString(r), typeString(c))
	}
}

func typeString(s map[string]any) string {
	if t, ok := s["type"]; ok {
		return compactJSON(t)
	}
	return "any"
}

// enumSet returns the values an enum or const allows, as compact JSON, and
// whether there is such a restriction.
func enumSet(s map[string]any) (map[string]bool, bool) {
	var out map[string]bool
	if values, ok := s["enum"].([]any); ok {
		out = map[string]bool{}
		for _, v := range values {
			out[compactJSON(v)] = true
		}
	}
	if v, ok := s["const"]; ok {
		one := compactJSON(v)
		if out == nil || out[one] {
			out = map[string]bool{one: true}
		} else {
			out = map[string]bool{} // enum and const disagree: nothing is valid
		}
	}
	return out, out != nil
}

func (d *differ) compareEnums(p string, r, c map[string]any) {
	re, rok := enumSet(r)
	ce, cok := enumSet(c)
	switch {
	case !rok && !cok:
	case !rok:
		d.report(p, ChangeEnumNarrowed, "values restricted to %s", setString(ce))
	case !cok:
		d.report(p, ChangeEnumWidened, "the restriction to %s was dropped", setString(re))
	default:
		var removed, added []string
		for v := range re {
			if !ce[v] {
				removed = append(removed, v)
			}
		}
		for v := range ce {
			if !re[v] {
				added = append(added, v)
			}
		}
		if len(removed) > 0 {
			slices.Sort(removed)
			d.report(p, ChangeEnumNarrowed, "no longer allows %s", strings.Join(removed, ", "))
		}
		if len(added) > 0 {
			slices.Sort(added)
			d.report(p, ChangeEnumWidened, "now also allows %s", strings.Join(added, ", "))
		}
	}
}

func setString(s map[string]bool) string {
	return "[" + strings.Join(slices.Sorted(maps.Keys(s)), ", ") + "]"
}

// bound is a keyword that limits a value from below or above.
type bound struct {
	keyword string
	lower   bool // a minimum: raising it tightens
	numeric bool // a numeric range: widening it is a warning
}

var bounds = []bound{
	{"minimum", true, true}, {"exclusiveMinimum", true, true},
	{"maximum", false, true}, {"exclusiveMaximum", false, true},
	{"minLength", true, false}, {"maxLength", false, false},
	{"minItems", true, false}, {"maxItems", false, false},
	{"minProperties", true, false}, {"maxProperties", false, false},
}

func (d *differ) compareBounds(p string, r, c map[string]any) {
	for _, b := range bounds {
		rv, rok := number(r[b.keyword])
		cv, cok := number(c[b.keyword])
		var tighter, looser bool
		switch {
		case !rok && !cok:
			continue
		case !rok:
			tighter = true
		case !cok:
			looser = true
		default:
			n := cv.Cmp(rv)
			tighter = b.lower && n > 0 || !b.lower && n < 0
			looser = b.lower && n < 0 || !b.lower && n > 0
		}
		switch {
		case tighter:
			d.report(p, ChangeConstraintTightened, "%s was %s, is %s", b.keyword, numberString(r[b.keyword]), numberString(c[b.keyword]))
		case looser && b.numeric:
			d.report(p, ChangeRangeWidened, "%s was %s, is %s", b.keyword, numberString(r[b.keyword]), numberString(c[b.keyword]))
		}
	}

	// multipleOf: a current divisor is looser only if it divides the
	// released one.
	rm, rok := number(r["multipleOf"])
	cm, cok := number(c["multipleOf"])
	if cok && cm.Sign() > 0 {
		loosened := false
		if rok {
			q := new(big.Rat).Quo(rm, cm)
			loosened = q.IsInt()
		}
		if !loosened {
			d.report(p, ChangeConstraintTightened, "multipleOf was %s, is %s", numberString(r["multipleOf"]), numberString(c["multipleOf"]))
		}
	}

	for _, k := range []string{"pattern", "format"} {
		rv, rok := r[k].(string)
		cv, cok := c[k].(string)
		if cok && (!rok || rv != cv) {
			d.report(p, ChangeConstraintTightened, "%s was %s, is %q", k, quotedOrNone(rv, rok), cv)
		}
	}

	if c["uniqueItems"] == true && r["uniqueItems"] != true {
		d.report(p, ChangeConstraintTightened, "uniqueItems added")
	}
}

func number(v any) (*big.Rat, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return nil, false
	}
	return new(big.Rat).SetString(n.String())
}

func numberString(v any) string {
	if v == nil {
		return "none"
	}
	return compactJSON(v)
}

func quotedOrNone(s string, ok bool) string {
	if !ok {
		return "none"
	}
	return strconv.Quote(s)
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// propertyPath appends a property name to a JSONPath.
func propertyPath(p, name string) string {
	if identifier.MatchString(name) {
		return p + "." + name
	}
	return p + "[" + strconv.Quote(name) + "]"
}

func (d *differ) compareObjects(p string, r, c map[string]any, rLoc, cLoc string) {
	rp, _ := r["properties"].(map[string]any)
	cp, _ := c["properties"].(map[string]any)
	for _, name := range slices.Sorted(maps.Keys(rp)) {
		at := propertyPath(p, name)
		cv, ok := cp[name]
		if !ok {
			d.report(at, ChangePropertyRemoved, "property removed")
			continue
		}
		d.compare(at, rp[name], cv, rLoc+pointer("properties", name), cLoc+pointer("properties", name))
	}

	rr, cr := stringSet(r["required"]), stringSet(c["required"])
	for _, name := range slices.Sorted(maps.Keys(cr)) {
		if rr[name] {
			continue
		}
		if _, existed := rp[name]; existed {
			d.report(propertyPath(p, name), ChangeRequiredAdded, "optional property made required")
		} else {
			d.report(propertyPath(p, name), ChangeRequiredAdded, "new required property")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(rr)) {
		if !cr[name] {
			if _, kept := cp[name]; kept || rp[name] == nil {
				d.report(propertyPath(p, name), ChangeRequiredRemoved, "required property made optional")
			}
		}
	}

	// additionalProperties: absent is true. A property that only the
	// released schema describes is now governed by the current
	// additionalProperties, which the removal report above already covers.
	ra, rok := r["additionalProperties"]
	ca, cok := c["additionalProperties"]
	if !rok && !cok {
		return
	}
	if !rok {
		ra = true
	}
	if !cok {
		ca = true
	}
	if ca == false && ra != false {
		d.report(p, ChangeConstraintTightened, "additionalProperties turned false: unknown fields are rejected")
		return
	}
	d.compare(p+".*", ra, ca, rLoc+pointer("additionalProperties"), cLoc+pointer("additionalProperties"))
}

func (d *differ) compareItems(p string, r, c map[string]any, rLoc, cLoc string) {
	ri, rok := r["items"]
	ci, cok := c["items"]
	if !rok && !cok {
		return
	}
	if !rok {
		ri = true
	}
	if !cok {
		ci = true
	}
	d.compare(p+"[*]", ri, ci, rLoc+pointer("items"), cLoc+pointer("items"))
}

func stringSet(v any) map[string]bool {
	out := map[string]bool{}
	if list, ok := v.([]any); ok {
		for _, item := range list {
			if s, ok := item.(string); ok {
				out[s] = true
			}
		}
	}
	return out
}

func compactJSON(v any) string {
	b, err := marshalNoEscape(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
