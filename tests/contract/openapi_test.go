package contract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/shopmesh/shopmesh/gateway"
	"github.com/shopmesh/shopmesh/tests/system"
)

// documentURL is where the served document is registered with the schema
// compiler, so its "#/components/..." references resolve inside it.
const documentURL = "https://shopmesh.dev/api/openapi.json"

// openAPI is the gateway's OpenAPI 3.1 document with every documented
// response schema compiled as JSON Schema 2020-12.
type openAPI struct {
	ops []*operation
}

// operation is one documented method and path.
type operation struct {
	method, pattern string
	segments        []string // "" for a path parameter
	statics         int      // segments that are not parameters
	responses       map[string]response
}

func (o *operation) key() string { return o.method + " " + o.pattern }

// response is one documented status (or "default"): the media types it
// may answer with and the schema of each (nil when none is given).
type response struct {
	content map[string]*jsonschema.Schema
}

// loadOpenAPI compiles the document as served. Response schemas are
// compiled closed: an object schema that lists properties and says nothing
// about others is read as additionalProperties false, so a field a service
// answers but the document does not describe is drift too.
func loadOpenAPI(t *testing.T, raw []byte) *openAPI {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	closeObjects(doc)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(documentURL, doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}

	type mediaType struct {
		Schema json.RawMessage `json:"schema"`
	}
	type resp struct {
		Ref     string               `json:"$ref"`
		Content map[string]mediaType `json:"content"`
	}
	var d struct {
		OpenAPI    string `json:"openapi"`
		Paths      map[string]map[string]struct{ Responses map[string]resp }
		Components struct {
			Responses map[string]resp `json:"responses"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if d.OpenAPI != "3.1.0" {
		t.Fatalf("openapi = %q, want 3.1.0", d.OpenAPI)
	}
	api := &openAPI{}
	for path, item := range d.Paths {
		for method, op := range item {
			o := &operation{method: strings.ToUpper(method), pattern: path, responses: map[string]response{}}
			for _, s := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
				if strings.HasPrefix(s, "{") {
					s = ""
				} else {
					o.statics++
				}
				o.segments = append(o.segments, s)
			}
			for code, r := range op.Responses {
				// The schema's location in the document, as a JSON pointer.
				loc := pointer("paths", path, method, "responses", code)
				if r.Ref != "" {
					name := strings.TrimPrefix(r.Ref, "#/components/responses/")
					r = d.Components.Responses[name]
					loc = pointer("components", "responses", name)
				}
				out := response{content: map[string]*jsonschema.Schema{}}
				for media, mt := range r.Content {
					var s *jsonschema.Schema
					if len(mt.Schema) > 0 {
						s, err = c.Compile(documentURL + "#" + loc + pointer("content", media, "schema"))
						if err != nil {
							t.Fatalf("%s %s %s: compile schema: %v", method, path, code, err)
						}
					}
					out.content[media] = s
				}
				o.responses[code] = out
			}
			api.ops = append(api.ops, o)
		}
	}
	sort.Slice(api.ops, func(i, j int) bool { return api.ops[i].key() < api.ops[j].key() })
	return api
}

// closeObjects sets additionalProperties false on every object schema in v
// that lists properties without saying whether others are allowed.
func closeObjects(v any) {
	switch v := v.(type) {
	case map[string]any:
		for _, child := range v {
			closeObjects(child)
		}
		if props, ok := v["properties"].(map[string]any); ok && v["type"] == "object" {
			if _, set := v["additionalProperties"]; !set && props != nil {
				v["additionalProperties"] = false
			}
		}
	case []any:
		for _, child := range v {
			closeObjects(child)
		}
	}
}

// pointer builds a JSON pointer (RFC 6901), escaped for a URL fragment.
func pointer(tokens ...string) string {
	var b strings.Builder
	for _, tok := range tokens {
		tok = strings.ReplaceAll(tok, "~", "~0")
		tok = strings.ReplaceAll(tok, "/", "~1")
		b.WriteString("/" + url.PathEscape(tok))
	}
	return b.String()
}

// find returns the documented operation of method and path.
func (a *openAPI) find(method, path string) *operation {
	if method == http.MethodHead {
		method = http.MethodGet
	}
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var best *operation
	for _, o := range a.ops {
		if o.method != method || len(o.segments) != len(segs) {
			continue
		}
		match := true
		for i, s := range o.segments {
			if s != "" && s != segs[i] {
				match = false
				break
			}
		}
		if match && (best == nil || o.statics > best.statics) {
			best = o
		}
	}
	return best
}

// httpContract checks every response of a run against the document and
// records which operations and statuses were exercised.
type httpContract struct {
	api *openAPI

	mu   sync.Mutex
	seen map[string][]int // operation key -> statuses checked
}

func newHTTPContract(api *openAPI) *httpContract {
	return &httpContract{api: api, seen: map[string][]int{}}
}

// do sends a request with c and checks the answer against the document.
func (h *httpContract) do(t *testing.T, c *system.Client, method, target string, body any, headers ...string) system.Response {
	t.Helper()
	r := c.Do(method, target, body, headers...)
	h.check(t, method, target, r)
	return r
}

// expect is do that fails the test unless the status is want, decoding the
// body into out when out is not nil.
func (h *httpContract) expect(t *testing.T, c *system.Client, want int, out any, method, target string, body any, headers ...string) system.Response {
	t.Helper()
	r := h.do(t, c, method, target, body, headers...)
	if r.Status != want {
		t.Fatalf("%s %s = %d %s, want %d", method, target, r.Status, r.Body, want)
	}
	if out != nil {
		r.JSON(t, out)
	}
	return r
}

// check validates one response and fails t for each violation.
func (h *httpContract) check(t *testing.T, method, target string, r system.Response) {
	t.Helper()
	for _, v := range h.violations(method, target, r) {
		t.Error(v)
	}
}

// violations checks one response: the operation is documented, the status
// is (success statuses explicitly, errors at least by "default"), the media
// type is one documented for it, and the body validates against its schema.
func (h *httpContract) violations(method, target string, r system.Response) []string {
	path, _, _ := strings.Cut(target, "?")
	op := h.api.find(method, path)
	if op == nil {
		return []string{fmt.Sprintf("%s %s answered %d but is not documented", method, path, r.Status)}
	}
	code := fmt.Sprint(r.Status)
	spec, ok := op.responses[code]
	if !ok && r.Status >= 400 {
		spec, ok = op.responses["default"]
	}
	if !ok {
		return []string{fmt.Sprintf("%s: status %d is not documented (body %s)", op.key(), r.Status, trim(r.Body))}
	}
	h.mu.Lock()
	h.seen[op.key()] = append(h.seen[op.key()], r.Status)
	h.mu.Unlock()

	var bad []string
	if r.Header.Get("X-Request-Id") == "" {
		bad = append(bad, fmt.Sprintf("%s %d: no X-Request-Id header", op.key(), r.Status))
	}
	if len(spec.content) == 0 {
		if len(r.Body) != 0 && method != http.MethodHead {
			bad = append(bad, fmt.Sprintf("%s %d: documented without a body, answered %s", op.key(), r.Status, trim(r.Body)))
		}
		return bad
	}
	media, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return append(bad, fmt.Sprintf("%s %d: content type %q: %v", op.key(), r.Status, r.Header.Get("Content-Type"), err))
	}
	schema, ok := spec.content[media]
	if !ok {
		return append(bad, fmt.Sprintf("%s %d: content type %s, documented %v", op.key(), r.Status, media, slices.Sorted(maps.Keys(spec.content))))
	}
	if schema == nil || method == http.MethodHead {
		return bad
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.Body))
	if err != nil {
		return append(bad, fmt.Sprintf("%s %d: body is not JSON: %v: %s", op.key(), r.Status, err, trim(r.Body)))
	}
	if err := schema.Validate(v); err != nil {
		bad = append(bad, fmt.Sprintf("%s %d: body does not match the documented schema:\n%s\nbody: %s", op.key(), r.Status, err, trim(r.Body)))
	}
	return bad
}

// checkCoverage fails for a documented operation no response of the run
// exercised: every operation needs a checked success and, where errors are
// documented beyond the gateway's own (429, 5xx), a checked client error.
func (h *httpContract) checkCoverage(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, op := range h.api.ops {
		statuses := h.seen[op.key()]
		success := slices.ContainsFunc(statuses, func(s int) bool { return s < 400 })
		clientError := slices.ContainsFunc(statuses, func(s int) bool { return s >= 400 && s < 500 && s != 429 })
		documentsClientErrors := false
		for code := range op.responses {
			if code[0] == '4' && code != "429" {
				documentsClientErrors = true
			}
		}
		if !success {
			t.Errorf("%s: no successful response was checked (saw %v)", op.key(), statuses)
		}
		if documentsClientErrors && !clientError {
			t.Errorf("%s: no problem response was checked (saw %v)", op.key(), statuses)
		}
	}
}

func trim(b []byte) string {
	if len(b) > 400 {
		return string(b[:400]) + "..."
	}
	return string(b)
}

// TestHTTPCheckerCatchesDrift proves the response checker against the
// document: answers that drift from it in the ways that matter are caught.
func TestHTTPCheckerCatchesDrift(t *testing.T) {
	t.Parallel()
	h := newHTTPContract(loadOpenAPI(t, gateway.OpenAPI()))
	id := "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90"
	answer := func(status int, contentType, body string) system.Response {
		return system.Response{Status: status, Body: []byte(body),
			Header: http.Header{"Content-Type": {contentType}, "X-Request-Id": {id}}}
	}
	problem := `{"type": "https://shopmesh.dev/problems/not-found", "title": "Not Found", "status": 404}`
	emptyCart := `{"lines": [], "item_count": 0}`
	cases := []struct {
		name, method, path string
		r                  system.Response
		wantOK             bool
	}{
		{"documented cart", "GET", "/api/v1/cart", answer(200, "application/json", emptyCart), true},
		{"documented problem", "GET", "/api/v1/orders/" + id, answer(404, "application/problem+json; charset=utf-8", problem), true},
		{"an error status only covered by default", "GET", "/api/v1/cart", answer(418, "application/problem+json", problem), true},
		{"the invoice's old credit_note shape", "GET", "/api/v1/orders/" + id + "/invoice",
			answer(200, "application/json", `{"order_id": "`+id+`", "invoice": null, "credit_note": null}`), false},
		{"an undocumented field", "GET", "/api/v1/cart", answer(200, "application/json", `{"lines": [], "item_count": 0, "coupon": "X"}`), false},
		{"a wrong type", "GET", "/api/v1/cart", answer(200, "application/json", `{"lines": [], "item_count": "none"}`), false},
		{"an undocumented success status", "GET", "/api/v1/cart", answer(201, "application/json", emptyCart), false},
		{"a problem as plain JSON", "GET", "/api/v1/orders/" + id, answer(404, "application/json", problem), false},
		{"a problem that is no problem", "GET", "/api/v1/orders/" + id, answer(404, "application/problem+json", `{"error": "not found"}`), false},
		{"no request id", "GET", "/api/v1/cart", system.Response{Status: 200, Body: []byte(emptyCart),
			Header: http.Header{"Content-Type": {"application/json"}}}, false},
		{"an undocumented route", "GET", "/api/v1/coupons", answer(200, "application/json", `{}`), false},
		{"a body where none is documented", "GET", "/healthz", answer(204, "text/plain", "ok"), false},
	}
	for _, tc := range cases {
		got := h.violations(tc.method, tc.path, tc.r)
		if ok := len(got) == 0; ok != tc.wantOK {
			t.Errorf("%s: violations %q, want ok %v", tc.name, got, tc.wantOK)
		}
	}
}
