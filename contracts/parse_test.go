package contracts

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// parse takes its fast path (one encoding/json decode and a count) for
// every payload the token parser finds clean, and for every payload returns
// exactly what the token parser does: the same value, the same problems.
// The documents drawn mix what the guard exists for: repeated keys, keys
// spelled with escapes, case variants (the Kelvin sign among them),
// non-snake_case keys, colons and escaped quotes inside strings, nesting
// around maxDepth, and truncated or trailing bytes.
func TestParseMatchesTheTokenParser(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		payload := []byte(jsonDocument().Draw(rt, "payload"))
		want, wantProblems := parseTokens(payload)
		got, problems := parse(payload)
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(problems, wantProblems) {
			rt.Fatalf("parse(%s)\n = %#v, %v\nparseTokens = %#v, %v", payload, got, problems, want, wantProblems)
		}
		_, clean := parseClean(payload)
		if clean != (len(wantProblems) == 0) {
			rt.Fatalf("parseClean(%s) clean = %v; the token parser found %v", payload, clean, wantProblems)
		}
	})
}

// Every example payload is clean, so each takes the fast path.
func TestExamplesParseOnTheFastPath(t *testing.T) {
	for _, et := range Registry() {
		payload, err := os.ReadFile("examples/" + et.Name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := parseClean(payload); !ok {
			t.Errorf("%s: the example is not clean: %v", et.Name, problemsOf(payload))
		}
	}
}

func problemsOf(payload []byte) []Problem {
	_, p := parseTokens(payload)
	return p
}

// jsonDocument draws a JSON text, now and then broken: cut short or
// followed by more bytes.
func jsonDocument() *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		doc := jsonValue(t, 0)
		if wrap := rapid.IntRange(0, 40).Draw(t, "wrap"); wrap > 28 { // around maxDepth
			doc = strings.Repeat("[", wrap) + doc + strings.Repeat("]", wrap)
		}
		switch rapid.IntRange(0, 9).Draw(t, "break") {
		case 0:
			doc = doc[:rapid.IntRange(0, len(doc)).Draw(t, "cut")]
		case 1:
			doc += rapid.SampledFrom([]string{" ", "{}", "1", " x", "\n"}).Draw(t, "trailing")
		}
		return doc
	})
}

// keys are JSON string literals as written: repeats and escapes of the
// same key, case variants, and keys that are not snake_case.
var keys = []string{
	`"id"`, `"order_id"`, `"ID"`, `"Id"`, `"\u0069d"`, `"a1"`, `"k"`, `"K"`, "\"\u212a\"",
	`"_x"`, `"x:y"`, `"q\"r"`, `"camelCase"`, `""`, `"order_id "`,
}

// strs are string literals that look like structure to a careless scanner.
var strs = []string{`""`, `"a"`, `":"`, `"\"a\":1"`, `"\\"`, `"\\\":"`, `"{\"k\":[1,2]}"`, `"é"`, `"\ud83d\ude00"`}

func jsonValue(t *rapid.T, depth int) string {
	kinds := []string{"scalar", "object", "array"}
	if depth > 4 {
		kinds = kinds[:1]
	}
	switch rapid.SampledFrom(kinds).Draw(t, "kind") {
	case "object":
		n := rapid.IntRange(0, 4).Draw(t, "members")
		parts := make([]string, n)
		for i := range parts {
			parts[i] = rapid.SampledFrom(keys).Draw(t, "key") + ":" + jsonValue(t, depth+1)
		}
		return "{" + strings.Join(parts, ",") + "}"
	case "array":
		n := rapid.IntRange(0, 3).Draw(t, "elements")
		parts := make([]string, n)
		for i := range parts {
			parts[i] = jsonValue(t, depth+1)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return rapid.SampledFrom(append([]string{"0", "-1.5e3", "12345678901234567890", "true", "false", "null"}, strs...)).Draw(t, "scalar")
}
