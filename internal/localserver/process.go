// Package localserver runs private PostgreSQL clusters and RabbitMQ nodes
// that their owner may stop, kill and start again without disturbing the
// shared local platform or anything else on the machine, and the child
// process handling behind them. Every server listens on 127.0.0.1 only,
// keeps all its files under a directory its owner gives it, and dies with
// the process that started it.
//
// It reports failures as errors and must not import testing: tests/testenv
// wraps it for tests, and the chaos harness behind `shopmesh chaos` uses it
// directly.
package localserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shopmesh/shopmesh/internal/procfs"
)

// Defaults for the options of StartPostgres and StartRabbitMQ.
const (
	defaultStartTimeout = 60 * time.Second
	stopTimeout         = 60 * time.Second
)

// ErrNotInstalled reports that PostgreSQL or RabbitMQ is not installed where
// the local platform installs it.
var ErrNotInstalled = errors.New("not installed")

// errExited reports that a server process ended while it was awaited.
var errExited = errors.New("server process exited")

// Process is a server process started as a direct child in its own process
// group, so that it is reaped (container init processes do not always reap
// orphans promptly), can be signalled together with the group, and dies
// with its parent (Pdeathsig) instead of leaking when that is killed. The
// zero Process has not been started; it may be started again once its
// process has ended.
//
// Liveness is the reaping, not the existence of a PID: the process counts
// as running until Wait has returned, and the workers a kill leaves to init
// count as gone once they are zombies, which init may never reap.
type Process struct {
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been waited for
	killed []int         // workers of the last kill, maybe still dying
}

// Start runs cmd in its own process group. cred, when not nil, is the user
// it runs as.
func (p *Process) Start(cmd *exec.Cmd, cred *syscall.Credential) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.exited:
		default:
			return errors.New("already running")
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status of a stopped or killed server says nothing
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	return nil
}

// Done returns a channel closed once the current process has ended and been
// reaped; when none was started it is already closed.
func (p *Process) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return p.exited
}

// Running reports whether the current process has not yet been reaped.
func (p *Process) Running() bool {
	select {
	case <-p.Done():
		return false
	default:
		return true
	}
}

// PID returns the process ID of the process started last, running or not,
// or 0 when none was started.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Signal sends sig to the process group without waiting.
func (p *Process) Signal(sig syscall.Signal) error {
	if !p.Running() {
		return errors.New("not running")
	}
	pid := p.PID()
	if err := syscall.Kill(-pid, sig); err != nil {
		return fmt.Errorf("signal %s to process group %d: %w", sig, pid, err)
	}
	return nil
}

// Stop sends sig to the process itself (a server shuts its workers down in
// its own order), waits up to timeout for it to exit, and kills it after
// that. It returns an error when it had to kill.
func (p *Process) Stop(sig syscall.Signal, timeout time.Duration) error {
	if !p.Running() {
		return nil
	}
	pid := p.PID()
	_ = syscall.Kill(-pid, syscall.SIGCONT) // a paused process cannot act on sig
	_ = syscall.Kill(pid, sig)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.Done():
		return nil
	case <-t.C:
	}
	p.Kill()
	return fmt.Errorf("process %d did not exit within %s of %s; killed it", pid, timeout, sig)
}

// KillNow SIGKILLs the process, its group and every process it forked at
// once, as a crash would, without waiting: for a kill at an exact moment.
// Only descendants are touched: a PostgreSQL postmaster's backends (each
// in a session of its own), a RabbitMQ node's VM and its port programs,
// never another server's processes nor the shared epmd (which detaches).
func (p *Process) KillNow() {
	if !p.Running() {
		return
	}
	pid := p.PID()
	// Stopped processes fork no more while their children are looked for.
	workers := stopDescendants(pid)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for _, w := range workers {
		_ = syscall.Kill(w, syscall.SIGKILL)
	}
	p.mu.Lock()
	p.killed = append(p.killed, workers...)
	p.mu.Unlock()
}

// Kill is KillNow, then waits (bounded) until the process is reaped and
// its workers are gone: a PostgreSQL backend still attached to the shared
// memory would make the next start fail. SIGKILL cannot be caught, so this
// is prompt.
func (p *Process) Kill() {
	p.KillNow()
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.Done():
	case <-t.C:
	}
	p.mu.Lock()
	workers := p.killed
	p.killed = nil
	p.mu.Unlock()
	// Bounded more tightly: a PID reused meanwhile must not stall a minute.
	deadline := time.Now().Add(10 * time.Second)
	for anyAlive(workers) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid runs: zombies and dying processes do not.
func alive(pid int) bool {
	st, err := procfs.ReadStat(pid)
	return err == nil && st.Alive()
}

func anyAlive(pids []int) bool {
	for _, pid := range pids {
		if alive(pid) {
			return true
		}
	}
	return false
}

// stopDescendants SIGSTOPs root and, until no more are found, every live
// process whose parent is stopped, and returns the descendants.
func stopDescendants(root int) []int {
	_ = syscall.Kill(root, syscall.SIGSTOP)
	stopped := map[int]bool{root: true}
	var found []int
	for grew := true; grew; {
		grew = false
		for _, st := range procfs.All() {
			if !stopped[st.PID] && stopped[st.PPID] && st.Alive() {
				_ = syscall.Kill(st.PID, syscall.SIGSTOP)
				stopped[st.PID] = true
				found = append(found, st.PID)
				grew = true
			}
		}
	}
	return found
}

// TailFile returns the last n lines of a file, for failure messages.
func TailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitReady polls ready every 50 ms until it returns nil, the process
// exits, ctx ends or timeout passes, and returns the last error.
func waitReady(ctx context.Context, proc *Process, timeout time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	exited := proc.Done()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := func() error {
			select {
			case <-exited:
				return errExited
			default:
			}
			// One attempt may not take the whole budget: a connection
			// attempt can hang while the server is half up.
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return ready(ctx)
		}()
		if err == nil || errors.Is(err, errExited) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("still failing after %s: %w", timeout, err)
		case <-tick.C:
		}
	}
}

// randomHex returns n random bytes as 2n hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

// prepareDir creates dir, when missing, for a server's files.
func prepareDir(dir string) error {
	if dir == "" {
		return errors.New("no directory given for the server's files")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}
