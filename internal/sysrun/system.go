package sysrun

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shopmesh/shopmesh/internal/apiclient"
	"github.com/shopmesh/shopmesh/internal/localserver"
	"github.com/shopmesh/shopmesh/internal/wait"
)

// Config describes one system.
type Config struct {
	// Binary is the shopmesh binary every process runs (required).
	Binary string
	// Platform is where the databases and the vhost are created (required).
	Platform Platform
	// Name names the vhost; each service's database is Name_<service>.
	Name string
	// Services are the services to run; nil asks the binary (DiscoverServices).
	Services []string
	// Vars add or override environment variables of every process and
	// command (e.g. SHOPMESH_ORDER_PAYMENT_TIMEOUT=2s).
	Vars map[string]string
	// Together runs one `serve all` process; otherwise one process per
	// service and one for the gateway.
	Together bool
	// ReadyTimeout bounds the wait for every process to be ready; default
	// two minutes.
	ReadyTimeout time.Duration
}

// System is a running shopmesh: its own databases and vhost, its
// processes, and the gateway in front of them.
type System struct {
	Binary    string
	Services  []string
	Env       []string          // every process's environment
	Gateway   string            // base URL, http://127.0.0.1:port
	AMQPURL   string            // administrator URL of the system's vhost
	Databases map[string]string // service -> administrator URL of its database
	// HTTP is the client the system's readiness probes and Client use.
	HTTP *http.Client

	dir   string
	infra *Infra
	addrs map[string]string // service or "gateway" -> HTTP address

	mu    sync.Mutex
	procs []*Process
}

// Process is one `shopmesh serve TARGET` process. Its output goes to a
// log file in the system's directory.
type Process struct {
	Name    string // the target: a service, "gateway" or "all"
	addrs   []string
	logPath string
	proc    localserver.Process
	ended   atomic.Bool // a caller stopped or killed it
}

// Start creates the databases and the vhost, migrates, starts the
// processes and waits until each is ready. On error everything started is
// removed again.
func Start(ctx context.Context, cfg Config) (s *System, err error) {
	s = &System{Binary: cfg.Binary, Services: cfg.Services, Databases: map[string]string{}, addrs: map[string]string{},
		HTTP: &http.Client{Timeout: 10 * time.Second}}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
			s = nil
		}
	}()
	if s.dir, err = os.MkdirTemp("", "shopmesh-"+cfg.Name+"-"); err != nil {
		return s, err
	}
	if s.Services == nil {
		if s.Services, err = DiscoverServices(ctx, cfg.Binary); err != nil {
			return s, fmt.Errorf("discover services: %w", err)
		}
	}
	if s.infra, err = NewShared(ctx, cfg.Platform, cfg.Name); err != nil {
		return s, err
	}
	s.AMQPURL = s.infra.AMQPAdmin
	vars := map[string]string{"SHOPMESH_POSTGRES_URL": s.infra.PGAdmin, "SHOPMESH_AMQP_URL": s.AMQPURL}
	for _, svc := range s.Services {
		up := strings.ToUpper(svc)
		if s.Databases[svc], err = s.infra.CreateDatabase(ctx, cfg.Name+"_"+svc); err != nil {
			return s, err
		}
		if s.addrs[svc], err = freeAddr(); err != nil {
			return s, err
		}
		vars["SHOPMESH_"+up+"_DATABASE_URL"] = s.Databases[svc]
		vars["SHOPMESH_"+up+"_AMQP_URL"] = s.AMQPURL
		vars["SHOPMESH_"+up+"_HTTP_ADDR"] = s.addrs[svc]
		vars["SHOPMESH_"+up+"_URL"] = "http://" + s.addrs[svc]
	}
	if s.addrs["gateway"], err = freeAddr(); err != nil {
		return s, err
	}
	vars["SHOPMESH_GATEWAY_ADDR"] = s.addrs["gateway"]
	s.Gateway = "http://" + s.addrs["gateway"]
	s.Env = Environ(vars, cfg.Vars)

	if err := Migrate(ctx, s.Binary, s.Env, s.Services); err != nil {
		return s, err
	}
	targets := append(slices.Clone(s.Services), "gateway")
	if cfg.Together {
		targets = []string{"all"}
	}
	for _, t := range targets {
		if _, err := s.StartProcess(t); err != nil {
			return s, err
		}
	}
	timeout := cfg.ReadyTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	return s, s.WaitReady(ctx, timeout)
}

func freeAddr() (string, error) {
	p, err := localserver.FreePort()
	return "127.0.0.1:" + strconv.Itoa(p), err
}

// StartProcess starts `shopmesh serve TARGET` (TARGET "all" for
// everything) in its own process group.
func (s *System) StartProcess(target string) (*Process, error) {
	p := &Process{Name: target, logPath: filepath.Join(s.dir, target+".log")}
	switch target {
	case "all":
		p.addrs = []string{s.addrs["gateway"]}
		for _, svc := range s.Services {
			p.addrs = append(p.addrs, s.addrs[svc])
		}
	default:
		p.addrs = []string{s.addrs[target]}
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(s.Binary, "serve", target)
	cmd.Env = s.Env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := p.proc.Start(cmd, nil); err != nil {
		return nil, fmt.Errorf("start %s: %w", target, err)
	}
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

// Processes returns the processes started so far, in start order.
func (s *System) Processes() []*Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.procs)
}

// Process returns the last process started for target, or nil.
func (s *System) Process(target string) *Process {
	ps := s.Processes()
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i].Name == target {
			return ps[i]
		}
	}
	return nil
}

// Addr returns the HTTP address (host:port) of a service or "gateway",
// where it serves its API and /metrics; empty for an unknown name.
func (s *System) Addr(name string) string { return s.addrs[name] }

// WaitReady polls every running process's addresses until all answer
// ready, a process exits, or timeout passes.
func (s *System) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	err := wait.Poll(ctx, 200*time.Millisecond, "system ready", func(ctx context.Context) (bool, error) {
		for _, p := range s.Processes() {
			if p.proc.PID() == 0 || p.stopped() {
				continue
			}
			if !p.Running() {
				return false, fmt.Errorf("%s exited:\n%s", p.Name, p.LogTail(15))
			}
			for _, addr := range p.addrs {
				if last = Ready(ctx, s.HTTP, addr, addr == s.addrs["gateway"]); last != nil {
					return false, nil // not listening yet
				}
			}
		}
		return true, nil
	})
	if err != nil && last != nil {
		err = fmt.Errorf("%w (last: %v)", err, last)
	}
	return err
}

// Command runs the binary with the system's environment and args to its end.
func (s *System) Command(ctx context.Context, args ...string) ([]byte, error) {
	return Command(ctx, s.Binary, s.Env, args...)
}

// Client returns an anonymous client of the gateway.
func (s *System) Client() *apiclient.Client { return apiclient.New(s.Gateway, s.HTTP) }

// Admin creates an administrator with `user create-admin` and returns a
// client logged in as them.
func (s *System) Admin(ctx context.Context, email, password string) (*apiclient.Client, error) {
	if err := CreateAdmin(ctx, s.Binary, s.Env, email, password); err != nil {
		return nil, err
	}
	c := s.Client()
	if err := c.Login(ctx, email, password); err != nil {
		return nil, fmt.Errorf("admin login: %w", err)
	}
	return c, nil
}

// PIDs returns the running processes' IDs by name.
func (s *System) PIDs() map[string]int {
	out := map[string]int{}
	for _, p := range s.Processes() {
		if p.Running() {
			out[p.Name] = p.proc.PID()
		}
	}
	return out
}

// Close stops the processes (SIGTERM, then SIGKILL after 15s), drops the
// databases, deletes the vhost and removes the process logs.
func (s *System) Close() error {
	var wg sync.WaitGroup
	for _, p := range s.Processes() {
		wg.Go(func() { _ = p.Stop(15 * time.Second) }) // killed after that, which is all Close needs
	}
	wg.Wait()
	var err error
	if s.infra != nil {
		err = s.infra.Close(context.Background())
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
	return err
}

// Running reports whether the process runs.
func (p *Process) Running() bool { return p.proc.Running() }

// PID is the process's ID (0 before it started).
func (p *Process) PID() int { return p.proc.PID() }

// stopped reports a process that ran and ended: one a caller stopped or
// killed is not waited for.
func (p *Process) stopped() bool { return p.proc.PID() != 0 && !p.proc.Running() && p.ended.Load() }

// Stop sends SIGTERM and waits up to grace, then SIGKILLs.
func (p *Process) Stop(grace time.Duration) error {
	p.ended.Store(true)
	return p.proc.Stop(syscall.SIGTERM, grace)
}

// Kill SIGKILLs the process group and waits for it.
func (p *Process) Kill() {
	p.ended.Store(true)
	p.proc.Kill()
}

// Done is closed once the process has ended.
func (p *Process) Done() <-chan struct{} { return p.proc.Done() }

// Log returns what the process wrote so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// LogTail returns the last n lines of the process's log.
func (p *Process) LogTail(n int) string { return localserver.TailFile(p.logPath, n) }
