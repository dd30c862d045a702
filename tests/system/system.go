// Package system starts the whole of shopmesh from the real binary for
// end-to-end and contract tests: it is internal/sysrun (fresh databases and
// vhost, `migrate --skip-provision`, `serve` processes, readiness) with
// testing.TB for errors and cleanup, and a typed client of the public API
// over internal/apiclient. For tests only.
package system

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/internal/sysrun"
	"github.com/shopmesh/shopmesh/tests/servicetest"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

// Services are the services the system runs, gateway aside.
var Services = []string{"user", "catalog", "cart", "order", "inventory", "payment", "shipping", "invoice", "notification",
	"customer", "loyalty", "analytics"}

// Options tune a system for a test.
type Options struct {
	// Separate runs one process per service and one for the gateway
	// (chaos tests kill them individually); otherwise one `serve all`.
	Separate bool
	// Env adds or overrides environment variables of every process
	// (e.g. SHOPMESH_ORDER_PAYMENT_TIMEOUT=2s).
	Env map[string]string
}

// System is a running shopmesh.
type System struct {
	t         testing.TB
	sys       *sysrun.System
	Binary    string
	Env       []string
	Gateway   string // base URL, http://127.0.0.1:port
	AMQPURL   string
	Databases map[string]string // service -> admin URL of its database
}

var (
	buildOnce sync.Once
	binDir    string
	binary    string
	buildErr  error
)

// Run runs a package's tests and then removes the binary Binary built for
// them, if any; a package that starts systems calls it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(system.Run(m)) }
func Run(m *testing.M) int {
	code := m.Run()
	if binDir != "" {
		if err := os.RemoveAll(binDir); err != nil {
			fmt.Fprintf(os.Stderr, "system: remove the test binary: %v\n", err)
		}
	}
	return code
}

// Binary builds cmd/shopmesh once per test process and returns its path;
// Run removes it when the package's tests end.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := testenv.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		if binDir, buildErr = os.MkdirTemp("", "shopmesh-bin-"); buildErr != nil {
			return
		}
		binary, buildErr = sysrun.BuildBinary(context.Background(), root, binDir)
	})
	if buildErr != nil {
		t.Fatalf("build shopmesh: %v", buildErr)
	}
	return binary
}

// Start provisions fresh databases and a vhost, migrates, starts the
// processes and waits until the gateway and every service are ready.
func Start(t testing.TB, opts Options) *System {
	t.Helper()
	vars := map[string]string{
		"SHOPMESH_JWT_SECRET": "e2e-token-secret-0123456789abcdef0123456789",
		"SHOPMESH_LOG_LEVEL":  "info",
		// Short, deterministic simulated world for tests. The payment
		// timeout stays the services' default (30 s), so that tok_ok wins
		// on a slow machine too; a test of the timeout path sets its own.
		"SHOPMESH_SHIPPING_DISPATCH_DELAY": "300ms",
		"SHOPMESH_SHIPPING_DELIVERY_DELAY": "300ms",
	}
	for k, v := range opts.Env {
		vars[k] = v
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	sys, err := sysrun.Start(context.Background(), sysrun.Config{
		Binary: Binary(t),
		Platform: sysrun.Platform{PostgresURL: testenv.AdminPostgresURL(t), AMQPURL: testenv.AdminAMQPURL(t),
			ManagementURL: testenv.ManagementURL(t)},
		Name:         "e2e_" + hex.EncodeToString(b),
		Services:     Services,
		Vars:         vars,
		Together:     !opts.Separate,
		ReadyTimeout: 60 * time.Second,
	})
	if err != nil {
		t.Fatalf("start the system: %v", err)
	}
	s := &System{t: t, sys: sys, Binary: sys.Binary, Env: sys.Env, Gateway: sys.Gateway, AMQPURL: sys.AMQPURL, Databases: sys.Databases}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range sys.Processes() {
				t.Logf("--- log of shopmesh serve %s (last 4000 bytes) ---\n%s", p.Name, tail(p.Log(), 4000))
			}
		}
		if err := sys.Close(); err != nil {
			t.Errorf("close the system: %v", err)
		}
	})
	return s
}

// Command returns a shopmesh command with the system's environment.
func (s *System) Command(args ...string) *exec.Cmd {
	cmd := exec.Command(s.Binary, args...)
	cmd.Env = s.Env
	return cmd
}

// Process is one running `shopmesh serve` process.
type Process struct {
	Name string
	p    *sysrun.Process
}

// Log returns what the process wrote so far.
func (p *Process) Log() string { return p.p.Log() }

// StartProcess starts `shopmesh serve TARGET` (TARGET "all" for everything).
// The system's cleanup stops it.
func (s *System) StartProcess(target string) *Process {
	s.t.Helper()
	p, err := s.sys.StartProcess(target)
	if err != nil {
		s.t.Fatal(err)
	}
	return &Process{Name: target, p: p}
}

// Process returns a started process by target name.
func (s *System) Process(target string) *Process {
	p := s.sys.Process(target)
	if p == nil {
		return nil
	}
	return &Process{Name: target, p: p}
}

// Stop sends SIGTERM and waits up to grace, then SIGKILLs.
func (p *Process) Stop(grace time.Duration) { _ = p.p.Stop(grace) }

// Kill SIGKILLs the process and waits for it.
func (p *Process) Kill() { p.p.Kill() }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool { return !p.p.Running() }

// WaitReady polls every running process until all are ready; a process
// that exits on its own fails the test at once.
func (s *System) WaitReady(timeout time.Duration) {
	s.t.Helper()
	if err := s.sys.WaitReady(context.Background(), timeout); err != nil {
		s.t.Fatal(err)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// Eventually polls cond until it returns true, failing t after timeout
// (servicetest.Until).
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	servicetest.Until(t, timeout, what, cond)
}
