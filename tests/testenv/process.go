package testenv

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

// startTimeout bounds how long a private server may take to become ready,
// and stopTimeout how long it may take to shut down.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 60 * time.Second
)

// errExited reports that a server process ended while it was awaited.
var errExited = errors.New("server process exited")

// freePort asks the kernel for a free TCP port on 127.0.0.1. Another process
// may take it before the server binds it; callers retry on a bind failure.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// daemon is a server process started as a direct child, so that it is reaped
// (container init processes do not always reap orphans promptly) and so that
// it dies with the test binary (Pdeathsig) instead of leaking when a test
// times out or panics.
type daemon struct {
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been waited for
}

// start runs cmd in its own process group. cred, when not nil, is the user
// it runs as.
func (d *daemon) start(cmd *exec.Cmd, cred *syscall.Credential) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd != nil {
		return errors.New("already running")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
		Credential: cred,
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status of a stopped or killed server says nothing
		close(exited)
	}()
	d.cmd, d.exited = cmd, exited
	return nil
}

// running returns the exit channel of the current process, or nil.
func (d *daemon) running() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return nil
	}
	select {
	case <-d.exited:
		d.cmd, d.exited = nil, nil
		return nil
	default:
		return d.exited
	}
}

// pid returns the process ID of the running process, or 0.
func (d *daemon) pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// stop sends sig to the process, waits up to timeout for it to exit, and
// kills its process group after that. It returns an error when the process
// had to be killed.
func (d *daemon) stop(sig syscall.Signal, timeout time.Duration) error {
	exited := d.running()
	if exited == nil {
		return nil
	}
	pid := d.pid()
	_ = syscall.Kill(pid, sig)
	select {
	case <-exited:
		d.running()
		return nil
	case <-time.After(timeout):
	}
	d.kill()
	return fmt.Errorf("process %d did not exit within %s of %s; killed it", pid, timeout, sig)
}

// kill SIGKILLs the process group and waits for the process to be reaped.
func (d *daemon) kill() {
	exited := d.running()
	if exited == nil {
		return
	}
	pid := d.pid()
	_ = syscall.Kill(-pid, syscall.SIGKILL) // the group: the server and its workers
	_ = syscall.Kill(pid, syscall.SIGKILL)
	select {
	case <-exited: // SIGKILL cannot be caught: this is prompt
	case <-time.After(stopTimeout):
	}
	d.running()
}

// serverUser returns the credential private PostgreSQL clusters run under:
// nil (the current user) unless running as root, which PostgreSQL refuses;
// then the "shopmesh" system user that deploy/local/platform.sh creates, or
// "postgres".
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

// chown hands path to cred's user; with a nil cred it does nothing.
func chown(path string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	return nil
}

// tail returns the last n lines of a file, for failure messages.
func tail(path string, n int) string {
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
