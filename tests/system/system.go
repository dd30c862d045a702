// Package system starts the whole of shopmesh from the real binary for
// end-to-end and chaos tests: every service gets a fresh database, all share
// a fresh vhost, the topology is declared with `shopmesh migrate`, and the
// services run as OS processes (`shopmesh serve all`, or one process per
// target). It also holds a typed client of the public API. For tests only.
package system

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/tests/testenv"
)

// Services are the services the system runs, gateway aside.
var Services = []string{"user", "catalog", "cart", "order", "inventory", "payment", "shipping", "invoice", "notification",
	"customer", "loyalty", "analytics"}

var ports = map[string]int{"user": 1, "catalog": 2, "cart": 3, "order": 4, "inventory": 5, "payment": 6, "shipping": 7,
	"invoice": 8, "customer": 9, "loyalty": 10, "notification": 11, "analytics": 12}

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
	Binary    string
	Env       []string
	Gateway   string // base URL, http://127.0.0.1:port
	AMQPURL   string
	Databases map[string]string // service -> admin URL of its database

	mu    sync.Mutex
	procs map[string]*Process
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// Binary builds cmd/shopmesh once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "shopmesh-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "shopmesh")
		cmd := exec.Command("go", "build", "-o", binary, "./cmd/shopmesh")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build shopmesh: %v", buildErr)
	}
	return binary
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// handedOut are the ports freePort returned in this process. The kernel
// may hand a just-closed port out again at once, so without this two
// services of one system could be given the same port.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freePort asks the kernel for an unused loopback port, never one it
// returned before in this process.
func freePort(t testing.TB) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port
		}
	}
}

// Start provisions fresh databases and a vhost, migrates, starts the
// processes and waits until the gateway and every service are ready.
func Start(t testing.TB, opts Options) *System {
	t.Helper()
	s := &System{t: t, Binary: Binary(t), AMQPURL: testenv.NewVHost(t), Databases: map[string]string{}, procs: map[string]*Process{}}
	env := map[string]string{
		"SHOPMESH_AMQP_URL":   s.AMQPURL,
		"SHOPMESH_JWT_SECRET": "e2e-token-secret-0123456789abcdef0123456789",
		"SHOPMESH_LOG_LEVEL":  "info",
		// Short, deterministic simulated world for tests.
		"SHOPMESH_ORDER_PAYMENT_TIMEOUT":   "3s",
		"SHOPMESH_SHIPPING_DISPATCH_DELAY": "300ms",
		"SHOPMESH_SHIPPING_DELIVERY_DELAY": "300ms",
	}
	for _, svc := range Services {
		db := testenv.NewDatabase(t)
		s.Databases[svc] = db
		up := strings.ToUpper(svc)
		env["SHOPMESH_"+up+"_DATABASE_URL"] = db
		env["SHOPMESH_"+up+"_AMQP_URL"] = s.AMQPURL
		port := freePort(t)
		env["SHOPMESH_"+up+"_HTTP_ADDR"] = fmt.Sprintf("127.0.0.1:%d", port)
		env["SHOPMESH_"+up+"_URL"] = fmt.Sprintf("http://127.0.0.1:%d", port)
	}
	gw := freePort(t)
	env["SHOPMESH_GATEWAY_ADDR"] = fmt.Sprintf("127.0.0.1:%d", gw)
	s.Gateway = fmt.Sprintf("http://127.0.0.1:%d", gw)
	for k, v := range opts.Env {
		env[k] = v
	}
	s.Env = os.Environ()
	for k, v := range env {
		s.Env = append(s.Env, k+"="+v)
	}

	if out, err := s.Command(append([]string{"migrate", "--skip-provision"}, Services...)...).CombinedOutput(); err != nil {
		t.Fatalf("shopmesh migrate: %v\n%s", err, out)
	}
	if opts.Separate {
		for _, svc := range Services {
			s.StartProcess(svc)
		}
		s.StartProcess("gateway")
	} else {
		s.StartProcess("all")
	}
	s.WaitReady(60 * time.Second)
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
	cmd  *exec.Cmd
	log  *syncWriter
	done chan struct{}
}

// Log returns what the process wrote so far.
func (p *Process) Log() string {
	p.log.mu.Lock()
	defer p.log.mu.Unlock()
	return p.log.w.String()
}

// StartProcess starts `shopmesh serve TARGET` (TARGET "all" for everything).
func (s *System) StartProcess(target string) *Process {
	s.t.Helper()
	log := &syncWriter{w: &bytes.Buffer{}}
	cmd := s.Command("serve", target)
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", target, err)
	}
	p := &Process{Name: target, cmd: cmd, log: log, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	s.mu.Lock()
	s.procs[target] = p
	s.mu.Unlock()
	s.t.Cleanup(func() {
		p.Stop(10 * time.Second)
		if s.t.Failed() {
			s.t.Logf("--- log of shopmesh serve %s (last 4000 bytes) ---\n%s", target, tail(p.Log(), 4000))
		}
	})
	return p
}

// Process returns a started process by target name.
func (s *System) Process(target string) *Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[target]
}

// Stop sends SIGTERM and waits up to grace, then SIGKILLs.
func (p *Process) Stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
	}
}

// Kill SIGKILLs the process and waits for it.
func (p *Process) Kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitReady polls the gateway's /readyz until it answers 204.
func (s *System) WaitReady(timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		s.mu.Lock()
		procs := make([]*Process, 0, len(s.procs))
		for _, p := range s.procs {
			procs = append(procs, p)
		}
		s.mu.Unlock()
		for _, p := range procs {
			if p.Exited() {
				s.t.Fatalf("shopmesh serve %s exited during start-up:\n%s", p.Name, tail(p.Log(), 4000))
			}
		}
		resp, err := client.Get(s.Gateway + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("system not ready after %s (last: %v)", timeout, errOrStatus(resp, err))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func errOrStatus(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// Eventually polls cond every 50ms until it returns true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
