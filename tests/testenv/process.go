package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/internal/localserver"
)

// startPrivate makes a directory for a private server (not t.TempDir: a
// PostgreSQL cluster run as another user must reach it), starts the server
// there and has it killed and its files removed when the test ends.
func startPrivate[S interface{ Close() error }](t testing.TB, what, prefix string,
	start func(ctx context.Context, dir string) (S, error)) S {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	s, err := start(context.Background(), dir)
	if err != nil {
		if errors.Is(err, localserver.ErrNotInstalled) {
			t.Fatalf("testenv: %v; %s", err, startHint)
		}
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("testenv: close private %s: %v", what, err)
		}
	})
	return s
}

// waitFor polls cond every interval until it returns nil or timeout passes,
// and returns the last error.
func waitFor(timeout, interval time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still failing after %s: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}
