package contracts

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// BenchmarkValidate splits what validating a typical payload costs: the
// guarded parse (duplicate, case-variant and snake_case keys), the schema
// check, both together, and next to them encoding/json decoding the same
// payload without any guard, the floor the parse is measured against, and
// the token parser, which the guarded parse falls back to for a payload
// that is not clean. "validate" is a payload's first check; "remembered"
// is every later one of the same payload in the process (another consumer
// of the same event under `serve all`).
func BenchmarkValidate(b *testing.B) {
	const eventType = TypeOrderPlacedV2
	payload, err := os.ReadFile("examples/" + eventType + ".json")
	if err != nil {
		b.Fatal(err)
	}
	e, err := defaultRegistry().lookup(eventType)
	if err != nil {
		b.Fatal(err)
	}
	doc, problems := parse(payload)
	if len(problems) > 0 {
		b.Fatal(problems)
	}
	b.Run("guarded-parse", func(b *testing.B) {
		for b.Loop() {
			parse(payload)
		}
	})
	b.Run("token-parse", func(b *testing.B) {
		for b.Loop() {
			parseTokens(payload)
		}
	})
	b.Run("plain-decode", func(b *testing.B) {
		for b.Loop() {
			d := json.NewDecoder(bytes.NewReader(payload))
			d.UseNumber()
			var v any
			if err := d.Decode(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("schema", func(b *testing.B) {
		for b.Loop() {
			if err := e.schema.Validate(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("validate", func(b *testing.B) {
		for b.Loop() {
			if err := e.check(payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("remembered", func(b *testing.B) {
		if err := e.validate(payload); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := e.validate(payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}
