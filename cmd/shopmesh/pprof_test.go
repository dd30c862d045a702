package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
)

// Profiles are served on loopback addresses only.
func TestPprofRefusesNonLoopbackAddresses(t *testing.T) {
	// Cancelled: were an address let through, the server would stop at once
	// and the test fail, instead of serving until the test times out.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "10.1.2.3:6060", "example.com:6060", "6060"} {
		err := servePprof(ctx, addr, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), addr) {
			t.Errorf("servePprof(%q) = %v, want an error naming the address", addr, err)
		}
	}
}
