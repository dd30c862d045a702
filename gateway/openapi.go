package gateway

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// openAPIDocument is the OpenAPI 3.1 description of every public route.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3.1 document the gateway serves at
// /api/openapi.json (a copy; contract tests validate responses against it).
func OpenAPI() []byte {
	return bytes.Clone(openAPIDocument)
}

// document is the served form of the OpenAPI document.
type document struct {
	body []byte
	etag string
}

func loadDocument() (*document, error) {
	if !json.Valid(openAPIDocument) {
		return nil, fmt.Errorf("openapi.json: not valid JSON")
	}
	sum := sha256.Sum256(openAPIDocument)
	return &document{body: openAPIDocument, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}, nil
}

// serve answers GET and HEAD, with conditional requests on the ETag.
func (d *document) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("ETag", d.etag)
	w.Header().Set("Cache-Control", "public, max-age=300")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(d.body))
}
