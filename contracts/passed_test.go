package contracts

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

func TestValidateChecksAPayloadOnce(t *testing.T) {
	r := defaultRegistry()
	placed, err := r.lookup(TypeOrderPlacedV2)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := os.ReadFile("examples/" + TypeOrderPlacedV2 + ".json")
	if err != nil {
		t.Fatal(err)
	}
	// An entry of its own with the same contract and a set of its own, so
	// that swapping its schema below cannot touch the shared registry.
	e := &entry{EventType: placed.EventType, schema: placed.schema, passed: newPassed(passedGeneration)}
	if err := e.validate(payload); err != nil {
		t.Fatalf("first validate: %v", err)
	}
	// Had the payload been checked again, order.cancelled's schema would
	// refuse it (it has no reason): it passed, so it is not.
	e.schema = r.types[TypeOrderCancelledV1].schema
	if err := e.validate(payload); err != nil {
		t.Errorf("the same payload again: %v, want it remembered", err)
	}
	other := []byte(strings.Replace(string(payload), `"line1"`, ` "line1"`, 1))
	if err := e.validate(other); err == nil {
		t.Error("a payload differing in one byte was not checked")
	}
}

func TestPassedTellsTypesApart(t *testing.T) {
	r := defaultRegistry()
	a, b := r.types[TypeOrderConfirmedV1], r.types[TypeOrderShippedV1]
	p := newPassed(passedGeneration)
	payload := []byte(`{"order_id":"0193e4a0-0000-7000-8000-000000000001"}`)
	p.add(a, payload)
	if !p.has(a, payload) {
		t.Error("not remembered for the type it passed as")
	}
	if p.has(b, payload) {
		t.Error("remembered for a type it never passed as")
	}
	p.add(b, payload)
	if !p.has(a, payload) || !p.has(b, payload) {
		t.Error("the second type displaced the first")
	}
}

func TestPassedIsBoundedByBytes(t *testing.T) {
	e := defaultRegistry().types[TypeOrderConfirmedV1]
	const limit = 1000
	p := newPassed(limit)
	payload := func(i int) []byte { return fmt.Appendf(nil, `{"n":%090d}`, i) } // 100 bytes
	for i := range 100 {
		p.add(e, payload(i))
		held := 0
		for _, m := range []map[string][]*entry{p.cur, p.old} {
			for k := range m {
				held += len(k)
			}
		}
		if held > 2*limit {
			t.Fatalf("after %d payloads it holds %d bytes, more than two generations of %d", i+1, held, limit)
		}
	}
	// The last generation and the one before it are remembered; older ones
	// are not.
	for i := 80; i < 100; i++ {
		if !p.has(e, payload(i)) {
			t.Errorf("payload %d of 100 forgotten", i)
		}
	}
	if p.has(e, payload(0)) {
		t.Error("the first payload of 100 is still remembered")
	}
	big := make([]byte, limit+1)
	p.add(e, big)
	if p.has(e, big) {
		t.Error("a payload larger than a generation was remembered")
	}
}

// TestValidateConcurrently runs validations of many payloads in parallel,
// valid ones (remembered) between invalid ones (never remembered): each
// must get its own answer. Under -race it also finds unguarded access to
// the set.
func TestValidateConcurrently(t *testing.T) {
	e := defaultRegistry().types[TypeOrderConfirmedV1]
	// A small set, so that generations turn over during the run.
	e = &entry{EventType: e.EventType, schema: e.schema, passed: newPassed(8 << 10)}
	example := string(e.Example)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				id := fmt.Sprintf("0190d6a5-8a41-7c52-b3d4-%012d", (i%50)*4+w%2)
				payload := []byte(strings.Replace(example, "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90", id, 1))
				if err := e.validate(payload); err != nil {
					t.Error(err)
					return
				}
				broken := []byte(strings.Replace(string(payload), id, "not-a-uuid", 1))
				if err := e.validate(broken); err == nil {
					t.Errorf("a payload whose order_id is no UUID passed, beside %s", id)
					return
				}
			}
		})
	}
	wg.Wait()
}
