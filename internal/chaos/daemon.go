package chaos

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// errExited reports that a server process ended while it was awaited.
var errExited = errors.New("server process exited")

// freePort asks the kernel for a free TCP port on 127.0.0.1. Another process
// may take it before it is bound; callers retry on a bind failure.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// daemon is a process started as a direct child in its own process group,
// so that it is reaped, can be signalled with everything it forked, and
// dies with the harness (Pdeathsig) instead of leaking when the harness
// itself is killed. The same shape as tests/testenv's private servers, which
// cannot be used here: they report through testing.TB.
type daemon struct {
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been waited for
}

// start runs cmd in its own process group; cred, when not nil, is the user
// it runs as.
func (d *daemon) start(cmd *exec.Cmd, cred *syscall.Credential) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd != nil {
		select {
		case <-d.exited:
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
		_ = cmd.Wait() // a killed server's exit status says nothing
		close(exited)
	}()
	d.cmd, d.exited = cmd, exited
	return nil
}

// done returns the exit channel of the current process (closed when it has
// exited), or a closed channel when none was started.
func (d *daemon) done() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return d.exited
}

func (d *daemon) running() bool {
	select {
	case <-d.done():
		return false
	default:
		return true
	}
}

func (d *daemon) pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// signal sends sig to the whole process group.
func (d *daemon) signal(sig syscall.Signal) error {
	if !d.running() {
		return errors.New("not running")
	}
	pid := d.pid()
	if err := syscall.Kill(-pid, sig); err != nil {
		return fmt.Errorf("signal %s to process group %d: %w", sig, pid, err)
	}
	return nil
}

// stop sends sig, waits up to timeout for the process to exit, and kills
// its group after that; it reports whether it had to kill.
func (d *daemon) stop(sig syscall.Signal, timeout time.Duration) error {
	if !d.running() {
		return nil
	}
	_ = d.signal(syscall.SIGCONT) // a paused process cannot act on sig
	_ = d.signal(sig)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-d.done():
		return nil
	case <-t.C:
	}
	d.kill()
	return fmt.Errorf("process %d did not exit within %s of %s; killed it", d.pid(), timeout, sig)
}

// kill SIGKILLs the process group and waits (bounded) for the process to be
// reaped. SIGKILL cannot be caught, so this is prompt.
func (d *daemon) kill() {
	if !d.running() {
		return
	}
	pid := d.pid()
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	select {
	case <-d.done():
	case <-t.C:
	}
}

// serverUser returns the credential private PostgreSQL clusters run under:
// nil (the current user) unless running as root, which PostgreSQL refuses;
// then the "shopmesh" system user the local platform creates, or "postgres".
func serverUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"shopmesh", "postgres"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err := strconv.ParseUint(u.Uid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("parse uid of %s: %w", name, err)
		}
		gid, err := strconv.ParseUint(u.Gid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("parse gid of %s: %w", name, err)
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
	}
	return nil, errors.New(`running as root and neither system user "shopmesh" nor "postgres" exists to run PostgreSQL`)
}

func chown(path string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	return nil
}

// tailFile returns the last n lines of a file, for failure messages.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	return tailLines(string(b), n)
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
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
