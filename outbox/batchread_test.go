package outbox_test

import (
	"context"
	"slices"
	"testing"

	"github.com/shopmesh/shopmesh/outbox"
)

type noKey struct{}

// Outside a consumer's Handler there is no batch and no transaction to
// keep reads for: every lookup loads its key alone, and remembering or
// forgetting changes nothing.
func TestReadBatchedOutsideAConsumerLoadsEachKeyAlone(t *testing.T) {
	ctx := context.Background()
	var loads [][]string
	load := func(keys []string) (map[string]int, error) {
		loads = append(loads, keys)
		return map[string]int{"a": 1}, nil
	}
	name := func(p struct{ ID string }) (string, bool) { return p.ID, p.ID != "" }
	outbox.RememberBatched(ctx, noKey{}, "a", 7)
	for range 2 {
		if v, found, err := outbox.ReadBatched(ctx, noKey{}, "a", name, load); err != nil || !found || v != 1 {
			t.Errorf("a = %d, %v, %v; want 1, found", v, found, err)
		}
	}
	if v, found, err := outbox.ReadBatched(ctx, noKey{}, "b", name, load); err != nil || found || v != 0 {
		t.Errorf("b = %d, %v, %v; want nothing found", v, found, err)
	}
	outbox.ForgetBatched[int](ctx, noKey{}, "a")
	if want := [][]string{{"a"}, {"a"}, {"b"}}; !slices.EqualFunc(loads, want, slices.Equal) {
		t.Errorf("loads %v, want %v", loads, want)
	}
}
