package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/shopmesh/shopmesh/gateway"
)

// localRoutes are the gateway's own endpoints, documented beside the API.
var localRoutes = []string{"GET /api/openapi.json", "GET /healthz", "GET /readyz"}

// oasDoc is the part of the document the sync checks read.
type oasDoc struct {
	OpenAPI    string                      `json:"openapi"`
	Security   []map[string][]string       `json:"security"`
	Paths      map[string]map[string]oasOp `json:"paths"`
	Components struct {
		SecuritySchemes map[string]struct {
			Type   string `json:"type"`
			Scheme string `json:"scheme"`
		} `json:"securitySchemes"`
		Parameters map[string]oasParam        `json:"parameters"`
		Responses  map[string]json.RawMessage `json:"responses"`
	} `json:"components"`
}

type oasOp struct {
	OperationID string                     `json:"operationId"`
	Security    *[]map[string][]string     `json:"security"`
	Parameters  []oasParam                 `json:"parameters"`
	RequestBody json.RawMessage            `json:"requestBody"`
	Responses   map[string]json.RawMessage `json:"responses"`
	Service     string                     `json:"x-shopmesh-service"`
}

type oasParam struct {
	Ref  string `json:"$ref"`
	Name string `json:"name"`
	In   string `json:"in"`
}

func loadDoc(t *testing.T) oasDoc {
	t.Helper()
	var d oasDoc
	if err := json.Unmarshal(gateway.OpenAPI(), &d); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return d
}

// TestOpenAPIMatchesRouteTable: every routed operation is documented with
// its owning service and access rule, and every documented operation is
// routed (or is one of the gateway's own endpoints).
func TestOpenAPIMatchesRouteTable(t *testing.T) {
	t.Parallel()
	d := loadDoc(t)
	if d.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", d.OpenAPI)
	}
	if s := d.Components.SecuritySchemes["bearerAuth"]; s.Type != "http" || s.Scheme != "bearer" {
		t.Errorf("bearerAuth scheme = %+v, want http bearer", s)
	}
	if len(d.Security) != 1 || d.Security[0]["bearerAuth"] == nil {
		t.Errorf("top-level security = %v, want bearerAuth", d.Security)
	}

	documented := map[string]oasOp{}
	for path, ops := range d.Paths {
		for method, op := range ops {
			documented[strings.ToUpper(method)+" "+path] = op
		}
	}
	routed := map[string]bool{}
	for _, r := range gateway.Routes() {
		key := r.Method + " " + r.Pattern
		routed[key] = true
		op, ok := documented[key]
		if !ok {
			t.Errorf("%s is routed but not documented", key)
			continue
		}
		if op.Service != string(r.Service) {
			t.Errorf("%s: documented x-shopmesh-service %q, routed to %q", key, op.Service, r.Service)
		}
		public := op.Security != nil && len(*op.Security) == 0
		if public != (r.Access == gateway.Public) {
			t.Errorf("%s: documented public %v, access %s", key, public, r.Access)
		}
		if _, ok := op.Responses["401"]; ok == (r.Access == gateway.Public) && key != "POST /api/v1/auth/login" {
			t.Errorf("%s: 401 documented %v, access %s", key, ok, r.Access)
		}
		if _, ok := op.Responses["403"]; ok != (r.Access == gateway.Admin) {
			t.Errorf("%s: 403 documented %v, access %s", key, ok, r.Access)
		}
		for _, code := range []string{"429", "502", "504", "default"} {
			if _, ok := op.Responses[code]; !ok {
				t.Errorf("%s: response %s not documented", key, code)
			}
		}
		if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
			for _, code := range []string{"413", "422"} {
				if _, ok := op.Responses[code]; !ok && len(op.RequestBody) > 0 {
					t.Errorf("%s: response %s not documented for a request body", key, code)
				}
			}
		}
		checkPathParams(t, d, key, r.Pattern, op)
	}
	for _, key := range localRoutes {
		routed[key] = true
		if op, ok := documented[key]; !ok {
			t.Errorf("%s is served but not documented", key)
		} else if op.Security == nil || len(*op.Security) != 0 {
			t.Errorf("%s: want security [] (public)", key)
		}
	}
	for key := range documented {
		if !routed[key] {
			t.Errorf("%s is documented but not routed", key)
		}
	}
}

var paramPattern = regexp.MustCompile(`\{([a-z_]+)\}`)

// checkPathParams: the operation declares exactly the pattern's parameters.
func checkPathParams(t *testing.T, d oasDoc, key, pattern string, op oasOp) {
	t.Helper()
	var want, got []string
	for _, m := range paramPattern.FindAllStringSubmatch(pattern, -1) {
		want = append(want, m[1])
	}
	for _, p := range op.Parameters {
		if p.Ref != "" {
			p = d.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
		}
		if p.In == "path" {
			got = append(got, p.Name)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s: path parameters %v, want %v", key, got, want)
	}
}

// TestOpenAPIDocumentIsValid validates the document with kin-openapi.
// kin-openapi v0.133 models OpenAPI 3.0 and rejects 3.1's "null" type, so
// it validates a 3.0 view of the document (see as30): everything else —
// references resolve, operation ids are unique, parameters, bodies and
// responses are well-formed, schemas and patterns are valid — is checked
// as written. TestOpenAPISchemasAreJSONSchema covers the 3.1 schemas.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	t.Parallel()
	var raw any
	if err := json.Unmarshal(gateway.OpenAPI(), &raw); err != nil {
		t.Fatal(err)
	}
	view, err := json.Marshal(as30(raw))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(view)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	ids := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID == "" {
				t.Errorf("%s %s: no operationId", method, path)
			}
			if prev, dup := ids[op.OperationID]; dup {
				t.Errorf("operationId %q used by %s and %s %s", op.OperationID, prev, method, path)
			}
			ids[op.OperationID] = method + " " + path
			for code, resp := range op.Responses.Map() {
				if code[0] != '4' && code[0] != '5' && code != "default" {
					continue
				}
				if resp.Value.Content.Get("application/problem+json") == nil {
					t.Errorf("%s %s: error response %s is not application/problem+json", method, path, code)
				}
			}
		}
	}
}

// as30 rewrites the document's 3.1-only nullability into 3.0 terms:
// {"oneOf": [X, {"type": "null"}]} becomes {"allOf": [X], "nullable": true}
// and a type list with "null" becomes the other type plus nullable.
func as30(v any) any {
	switch v := v.(type) {
	case []any:
		for i := range v {
			v[i] = as30(v[i])
		}
		return v
	case map[string]any:
		for k := range v {
			v[k] = as30(v[k])
		}
		if v["openapi"] == "3.1.0" {
			v["openapi"] = "3.0.3"
			if info, ok := v["info"].(map[string]any); ok {
				delete(info, "summary")
				if lic, ok := info["license"].(map[string]any); ok {
					delete(lic, "identifier")
				}
			}
		}
		if types, ok := v["type"].([]any); ok {
			var other []any
			for _, t := range types {
				if t != "null" {
					other = append(other, t)
				}
			}
			if len(other) == 1 && len(other) < len(types) {
				v["type"], v["nullable"] = other[0], true
			}
		}
		if alts, ok := v["oneOf"].([]any); ok {
			var other []any
			for _, a := range alts {
				if m, ok := a.(map[string]any); !ok || m["type"] != "null" || len(m) != 1 {
					other = append(other, a)
				}
			}
			if len(other) < len(alts) {
				delete(v, "oneOf")
				v["allOf"], v["nullable"] = other, true
			}
		}
		return v
	default:
		return v
	}
}

// TestOpenAPISchemasAreJSONSchema compiles every component schema as JSON
// Schema 2020-12 (the dialect of OpenAPI 3.1 schemas).
func TestOpenAPISchemasAreJSONSchema(t *testing.T) {
	t.Parallel()
	c := openAPICompiler(t)
	var d struct {
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(gateway.OpenAPI(), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Components.Schemas) == 0 {
		t.Fatal("the document has no component schemas")
	}
	for name := range d.Components.Schemas {
		if _, err := c.Compile(openAPIURL + "#/components/schemas/" + name); err != nil {
			t.Errorf("schema %s: %v", name, err)
		}
	}
}
