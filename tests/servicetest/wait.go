package servicetest

import (
	"testing"
	"time"
)

// pollInterval is how often a wait checks its condition.
const pollInterval = 20 * time.Millisecond

// Until checks cond until it holds, failing t after timeout with what it
// waited for and cond's last description of what it saw.
func Until(t testing.TB, timeout time.Duration, what string, cond func() (ok bool, seen string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if seen == "" {
				t.Fatalf("timed out after %s waiting for %s", timeout, what)
			}
			t.Fatalf("timed out after %s waiting for %s (last seen: %s)", timeout, what, seen)
		}
		time.Sleep(pollInterval) // bounded by the deadline
	}
}

// Poll checks cond until it holds, within the service's wait; see Until.
func (s *Service) Poll(what string, cond func() (ok bool, seen string)) {
	s.t.Helper()
	Until(s.t, s.spec.Wait, what, cond)
}

// Eventually checks cond until it holds, failing the test after the
// service's wait.
func (s *Service) Eventually(what string, cond func() bool) {
	s.t.Helper()
	Until(s.t, s.spec.Wait, what, func() (bool, string) { return cond(), "" })
}
