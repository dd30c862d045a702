package contracts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// maxDepth bounds nesting; the deepest contract is four levels.
const maxDepth = 32

// ValidationError reports a payload that breaks its event type's contract.
// Retrying cannot fix it: a consumer dead-letters the message.
type ValidationError struct {
	Type     string
	Problems []Problem
}

// Problem is one reason a payload is invalid.
type Problem struct {
	// Field is a JSON Pointer (RFC 6901) to the value at fault, such as
	// "/lines/0/quantity"; "" is the whole payload.
	Field   string
	Message string
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid %s payload: ", e.Type)
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		field := p.Field
		if field == "" {
			field = "(payload)"
		}
		fmt.Fprintf(&b, "%s: %s", field, p.Message)
	}
	return b.String()
}

// Fields returns the JSON Pointers of the fields at fault.
func (e *ValidationError) Fields() []string {
	fields := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		fields = append(fields, p.Field)
	}
	return slices.Compact(fields)
}

// Validate checks payload against the contract of eventType. It returns an
// error wrapping ErrUnknownType for a type or version this build does not
// know, and a *ValidationError naming every field at fault otherwise.
//
// Beyond the schema it rejects what Go's JSON decoder silently accepts:
// duplicate keys (the decoder keeps the last, a schema validator may have
// checked the first) and keys that differ from a field only in case (the
// decoder matches field names case-insensitively, so such a key would reach
// a struct field the schema never checked). For the same reason every key
// must be snake_case, as every contract field is.
func Validate(eventType string, payload []byte) error {
	e, err := defaultRegistry().lookup(eventType)
	if err != nil {
		return err
	}
	return e.validate(payload)
}

// Decode validates payload as Validate does and unmarshals it into v, which
// is usually the type's Go struct (EventType.New) but may be a consumer's
// own struct holding the fields it reads.
func Decode(eventType string, payload []byte, v any) error {
	if err := Validate(eventType, payload); err != nil {
		return err
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("decode %s: %w", eventType, err)
	}
	return nil
}

// validate checks payload against e's contract, once per payload: a
// payload that passed is remembered (see passed).
func (e *entry) validate(payload []byte) error {
	if e.passed.has(e, payload) {
		return nil
	}
	err := e.check(payload)
	if err == nil {
		e.passed.add(e, payload)
	}
	return err
}

// check is validate without the memory of what passed.
func (e *entry) check(payload []byte) error {
	doc, problems := parse(payload)
	if len(problems) == 0 {
		var verr *jsonschema.ValidationError
		if err := e.schema.Validate(doc); errors.As(err, &verr) {
			problems = schemaProblems(verr, message.NewPrinter(language.English))
		} else if err != nil {
			problems = []Problem{{Message: err.Error()}}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	slices.SortStableFunc(problems, func(a, b Problem) int { return strings.Compare(a.Field, b.Field) })
	return &ValidationError{Type: e.Name, Problems: problems}
}

// schemaProblems flattens the validator's tree into its leaves, one problem
// per field; a missing required property is reported at its own path.
func schemaProblems(err *jsonschema.ValidationError, p *message.Printer) []Problem {
	if len(err.Causes) > 0 {
		var out []Problem
		for _, c := range err.Causes {
			out = append(out, schemaProblems(c, p)...)
		}
		return out
	}
	field := pointer(err.InstanceLocation...)
	if req, ok := err.ErrorKind.(*kind.Required); ok {
		out := make([]Problem, 0, len(req.Missing))
		for _, name := range req.Missing {
			out = append(out, Problem{Field: field + pointer(name), Message: "required field is missing"})
		}
		return out
	}
	return []Problem{{Field: field, Message: err.ErrorKind.LocalizedString(p)}}
}

// parse decodes payload into the generic form the schema validator takes
// (numbers stay json.Number, so no precision is lost) and reports
// duplicate, case-variant and non-snake_case keys. Nearly every payload
// has none, so it is first decoded whole (parseClean); only one that is not
// clean is decoded again token by token (parseTokens), which names the
// field of each problem.
func parse(payload []byte) (any, []Problem) {
	if v, ok := parseClean(payload); ok {
		return v, nil
	}
	return parseTokens(payload)
}

// parseClean decodes payload with encoding/json in one call and reports
// whether it is clean: one JSON value, nested at most maxDepth levels, every
// key snake_case and none repeated within its object. Distinct snake_case
// keys never differ only in case, and the decoder keeps the last of
// repeated keys, so repeats are found by counting: each member of an object
// has exactly one colon outside strings, so the payload holds more colons
// than the decoded objects hold keys exactly when a key repeats.
func parseClean(payload []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	keys, ok := snakeKeys(v, 0)
	return v, ok && keys == members(payload)
}

// snakeKeys counts the keys of every object in v, a decoded value at depth
// levels of nesting; ok is false when one is not snake_case or v nests
// deeper than maxDepth.
func snakeKeys(v any, depth int) (n int, ok bool) {
	if depth > maxDepth {
		return 0, false
	}
	switch v := v.(type) {
	case map[string]any:
		n = len(v)
		for k, e := range v {
			m, ok := snakeKeys(e, depth+1)
			if !ok || !isSnakeCase(k) {
				return 0, false
			}
			n += m
		}
	case []any:
		for _, e := range v {
			m, ok := snakeKeys(e, depth+1)
			if !ok {
				return 0, false
			}
			n += m
		}
	}
	return n, true
}

// members counts the object members of payload, valid JSON: the colons
// outside strings.
func members(payload []byte) int {
	n, inString := 0, false
	for i := 0; i < len(payload); i++ {
		switch c := payload[i]; {
		case inString && c == '\\':
			i++ // the escaped character, which may be a quote
		case c == '"':
			inString = !inString
		case c == ':' && !inString:
			n++
		}
	}
	return n
}

// parseTokens decodes payload token by token, reporting duplicate,
// case-variant and non-snake_case keys at their fields on the way.
func parseTokens(payload []byte) (any, []Problem) {
	p := &parser{dec: json.NewDecoder(bytes.NewReader(payload))}
	p.dec.UseNumber()
	v, err := p.value(0)
	if err == nil {
		if _, err = p.dec.Token(); err == io.EOF {
			err = nil
		} else if err == nil {
			err = errors.New("data after the JSON value")
		}
	}
	if err != nil {
		return nil, append(p.problems, Problem{Message: "invalid JSON: " + err.Error()})
	}
	return v, p.problems
}

type parser struct {
	dec      *json.Decoder
	problems []Problem
	// path holds the reference tokens of the value being read; its JSON
	// Pointer is rendered only for a problem.
	path []string
}

func (p *parser) problem(message string) {
	p.problems = append(p.problems, Problem{Field: pointer(p.path...), Message: message})
}

func (p *parser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxDepth)
	}
	tok, err := p.dec.Token()
	if err == io.EOF {
		return nil, io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		return p.object(depth)
	case json.Delim('['):
		return p.array(depth)
	}
	return tok, nil
}

func (p *parser) object(depth int) (any, error) {
	obj := map[string]any{}
	// Keys folded and as first spelled, in order: objects are small, so a
	// scan beats a map.
	var folded, spelled []string
	for p.dec.More() {
		tok, err := p.dec.Token()
		if err != nil {
			return nil, err
		}
		key := tok.(string) // the decoder only yields strings as object keys
		snake := isSnakeCase(key)
		f := key // a snake_case key is its own folding
		if !snake {
			f = fold(key)
		}
		p.path = append(p.path, key)
		switch i := slices.Index(folded, f); {
		case i >= 0 && spelled[i] == key:
			p.problem("duplicate key")
		case i >= 0:
			p.problem(fmt.Sprintf("key %q differs from key %q only in case", key, spelled[i]))
		default:
			folded, spelled = append(folded, f), append(spelled, key)
			if !snake {
				p.problem(fmt.Sprintf("key %q is not snake_case", key))
			}
		}
		v, err := p.value(depth + 1)
		p.path = p.path[:len(p.path)-1]
		if err != nil {
			return nil, err
		}
		obj[key] = v
	}
	_, err := p.dec.Token() // '}'
	return obj, err
}

func (p *parser) array(depth int) (any, error) {
	arr := []any{}
	for i := 0; p.dec.More(); i++ {
		p.path = append(p.path, strconv.Itoa(i))
		v, err := p.value(depth + 1)
		p.path = p.path[:len(p.path)-1]
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
	}
	_, err := p.dec.Token() // ']'
	return arr, err
}

// fold maps every rune to one representative of its Unicode case-folding
// orbit, so two keys fold alike exactly when strings.EqualFold says so, the
// rule Go's decoder matches field names by ("K", "k" and the Kelvin sign).
// The representative is the orbit's ASCII lower-case letter when it has one
// (so a snake_case key folds to itself), else its smallest rune.
func fold(s string) string {
	var b strings.Builder
	for _, r := range s {
		least, lower := r, rune(-1)
		f := r
		for {
			least = min(least, f)
			if 'a' <= f && f <= 'z' {
				lower = f
			}
			if f = unicode.SimpleFold(f); f == r {
				break
			}
		}
		if lower >= 0 {
			least = lower
		}
		b.WriteRune(least)
	}
	return b.String()
}

// isSnakeCase reports whether s is a lower-case snake_case name, the only
// key spelling contracts use.
func isSnakeCase(s string) bool {
	for i, r := range s {
		switch {
		case 'a' <= r && r <= 'z':
		case i > 0 && ('0' <= r && r <= '9' || r == '_'):
		default:
			return false
		}
	}
	return s != ""
}

// pointer renders reference tokens as a JSON Pointer (RFC 6901).
func pointer(tokens ...string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		b.WriteString(strings.ReplaceAll(t, "/", "~1"))
	}
	return b.String()
}
