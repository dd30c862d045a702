package gateway_test

import (
	"bytes"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/shopmesh/shopmesh/gateway"
)

// openAPIURL is where the document is registered with the schema compiler,
// so "#/components/schemas/X" references resolve inside it.
const openAPIURL = "https://shopmesh.dev/api/openapi.json"

func openAPICompiler(t *testing.T) *jsonschema.Compiler {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(gateway.OpenAPI()))
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(openAPIURL, doc); err != nil {
		t.Fatalf("add openapi.json: %v", err)
	}
	return c
}

// checkDocumented validates a problem body the gateway wrote against the
// documented Problem schema.
func checkDocumented(t *testing.T, body []byte) {
	t.Helper()
	s, err := openAPICompiler(t).Compile(openAPIURL + "#/components/schemas/Problem")
	if err != nil {
		t.Fatalf("compile Problem schema: %v", err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("problem body %q: %v", body, err)
	}
	if err := s.Validate(v); err != nil {
		t.Errorf("problem %s does not match the documented schema: %v", body, err)
	}
}
