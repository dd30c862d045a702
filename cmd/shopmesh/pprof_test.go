package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
)

// Profiles are served on loopback addresses only.
func TestPprofRefusesNonLoopbackAddresses(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "10.1.2.3:6060", "example.com:6060", "6060"} {
		err := servePprof(context.Background(), addr, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), addr) {
			t.Errorf("servePprof(%q) = %v, want an error naming the address", addr, err)
		}
	}
}
