package order

import "testing"

// The inbox must handle exactly what `shopmesh migrate` binds to it.
func TestInboxHandlesExactlyTheRegisteredTypes(t *testing.T) {
	t.Parallel()
	if err := checkSubscriptions(); err != nil {
		t.Error(err)
	}
}
