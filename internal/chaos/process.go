package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shopmesh/shopmesh/internal/localserver"
	"github.com/shopmesh/shopmesh/internal/sysrun"
	"github.com/shopmesh/shopmesh/internal/wait"
)

// process is one `shopmesh serve TARGET` process (or a replica of one). It
// knows whether its end was asked for, so the supervisor can tell a crash
// from a kill.
type process struct {
	name    string // "order", "order#2", "gateway"
	target  string
	env     []string
	addr    string // its HTTP address (readyz)
	logPath string
	binary  string

	mu       sync.Mutex
	proc     localserver.Process
	expected bool // the current process's end was asked for
	starts   int
	paused   bool
}

func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== start %d of %s at %s\n", p.starts+1, p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.binary, "serve", p.target)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := p.proc.Start(cmd, nil); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.expected, p.paused = false, false
	p.starts++
	return nil
}

// expectEnd marks the running process's coming end as intended.
func (p *process) expectEnd() {
	p.mu.Lock()
	p.expected = true
	p.paused = false
	p.mu.Unlock()
}

// kill SIGKILLs the process and waits until it is gone.
func (p *process) kill() {
	p.expectEnd()
	p.proc.Kill()
}

// killNow SIGKILLs the process without waiting: it is called from a tap at
// an exact protocol moment. Wait on exited, then start it again.
func (p *process) killNow() {
	p.expectEnd()
	p.proc.KillNow()
}

// exited is closed once the current process has ended.
func (p *process) exited() <-chan struct{} { return p.proc.Done() }

func (p *process) stop() error {
	p.expectEnd()
	return p.proc.Stop(syscall.SIGTERM, 15*time.Second)
}

func (p *process) pause() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.proc.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	p.paused = true
	return nil
}

func (p *process) resume() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused {
		return nil
	}
	p.paused = false
	return p.proc.Signal(syscall.SIGCONT)
}

func (p *process) running() bool { return p.proc.Running() }

// crashed reports a process that ended without being asked to.
func (p *process) crashed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proc.PID() != 0 && !p.proc.Running() && !p.expected
}

func (p *process) logTail(n int) string { return localserver.TailFile(p.logPath, n) }

// ready asks the process once whether it is ready (see sysrun.Ready).
func (p *process) ready(ctx context.Context, client *http.Client) error {
	return sysrun.Ready(ctx, client, p.addr, p.target == "gateway")
}

// processes is the set of running processes of one system.
type processes struct {
	logger *slog.Logger
	dir    string
	binary string
	client *http.Client

	mu      sync.Mutex
	procs   map[string]*process
	crashes []crash
}

// crash records a process that died on its own.
type crash struct {
	Process string `json:"process"`
	At      string `json:"at"`
	LogTail string `json:"log_tail"`
}

func newProcesses(dir, binary string, logger *slog.Logger) *processes {
	return &processes{logger: logger, dir: dir, binary: binary, procs: map[string]*process{},
		client: &http.Client{Timeout: 3 * time.Second}}
}

func (ps *processes) add(name, target, addr string, env []string) *process {
	p := &process{name: name, target: target, env: env, addr: addr, binary: ps.binary,
		logPath: filepath.Join(ps.dir, strings.ReplaceAll(name, "#", "-")+".log")}
	ps.mu.Lock()
	ps.procs[name] = p
	ps.mu.Unlock()
	return p
}

func (ps *processes) get(name string) *process {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.procs[name]
}

func (ps *processes) remove(name string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	delete(ps.procs, name)
}

func (ps *processes) list() []*process {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make([]*process, 0, len(ps.procs))
	for _, p := range ps.procs {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// supervise restarts processes that died on their own (as an orchestrator
// would) and records each such crash: a service must survive a broker or
// database outage without exiting. It returns when ctx ends.
func (ps *processes) supervise(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range ps.list() {
			if !p.crashed() {
				continue
			}
			c := crash{Process: p.name, At: time.Now().Format(time.RFC3339), LogTail: p.logTail(25)}
			ps.mu.Lock()
			ps.crashes = append(ps.crashes, c)
			ps.mu.Unlock()
			ps.logger.Warn("process exited on its own; restarting it", "process", p.name)
			if err := p.start(); err != nil {
				ps.logger.Error("restart failed", "process", p.name, "err", err)
			}
		}
	}
}

// crashCount returns how many crashes were recorded so far.
func (ps *processes) crashCount() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return len(ps.crashes)
}

func (ps *processes) crashesSince(n int) []crash {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if n >= len(ps.crashes) {
		return nil
	}
	return append([]crash(nil), ps.crashes[n:]...)
}

// waitReady polls every process until all answer ready or timeout passes.
func (ps *processes) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var notReady []string
		var lastErr error
		for _, p := range ps.list() {
			if !p.running() {
				notReady = append(notReady, p.name+" (not running)")
				continue
			}
			if err := p.ready(ctx, ps.client); err != nil {
				notReady = append(notReady, p.name)
				lastErr = err
			}
		}
		if len(notReady) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			var tails []string
			for _, n := range notReady {
				if p := ps.get(strings.TrimSuffix(n, " (not running)")); p != nil {
					tails = append(tails, "--- "+p.name+":\n"+p.logTail(15))
				}
			}
			return fmt.Errorf("not ready after %s: %s (last: %v)\n%s", timeout, strings.Join(notReady, ", "), lastErr, strings.Join(tails, "\n"))
		}
		if err := wait.Sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// heal resumes paused processes and starts every process that is down.
func (ps *processes) heal() error {
	var errs []error
	for _, p := range ps.list() {
		if err := p.resume(); err != nil && p.running() {
			errs = append(errs, err)
		}
		if !p.running() {
			if err := p.start(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// stopAll ends every process: SIGTERM, then SIGKILL after a grace period.
func (ps *processes) stopAll() {
	var wg sync.WaitGroup
	for _, p := range ps.list() {
		wg.Go(func() { _ = p.stop() })
	}
	wg.Wait()
}
