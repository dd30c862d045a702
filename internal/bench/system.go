package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/internal/chaos"
	"github.com/shopmesh/shopmesh/internal/localserver"
)

// system is the whole of shopmesh started from the real binary for the
// orders and memory scenarios: fresh databases (bench_<id>_<label>_<svc>)
// and a fresh vhost (bench_<id>_<label>) on the shared platform, and either
// one OS process per service plus the gateway, or one `serve all` process.
// Unlike the chaos harness it puts no proxy in between: what is measured is
// the system, not the harness. close removes everything it created.
type system struct {
	label     string
	dir       string
	binary    string
	pgAdmin   string
	mgmt      *management
	vhost     string
	databases []string
	env       []string
	gateway   string
	procs     []*sysProcess
	http      *http.Client
	token     string // the administrator's
}

// sysProcess is one `shopmesh serve TARGET` process.
type sysProcess struct {
	name, target string
	addrs        []string // HTTP addresses to ask for readiness
	proc         localserver.Process
}

// startSystem starts a system; together runs it as one `serve all`
// process. On error everything started is removed again.
func startSystem(ctx context.Context, cfg Config, id, label string, together bool) (s *system, err error) {
	s = &system{label: label, binary: cfg.Binary, pgAdmin: cfg.PostgresURL, vhost: "bench_" + id + "_" + label,
		http: &http.Client{Timeout: 10 * time.Second}}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.close())
			s = nil
		}
	}()
	if s.dir, err = os.MkdirTemp("", "shopmesh-bench-"+label+"-"); err != nil {
		return s, err
	}
	services, err := chaos.DiscoverServices(ctx, cfg.Binary)
	if err != nil {
		return s, fmt.Errorf("discover services: %w", err)
	}
	if s.mgmt, err = newManagement(cfg.ManagementURL); err != nil {
		return s, err
	}
	amqpURL, err := s.createVHost(ctx, cfg.AMQPURL)
	if err != nil {
		return s, err
	}
	vars := map[string]string{
		"SHOPMESH_POSTGRES_URL":            cfg.PostgresURL,
		"SHOPMESH_AMQP_URL":                amqpURL,
		"SHOPMESH_JWT_SECRET":              "bench-" + id + "-" + label + "-secret-0123456789",
		"SHOPMESH_LOG_LEVEL":               "warn",
		"SHOPMESH_GATEWAY_RATE_LIMIT":      "100000",
		"SHOPMESH_GATEWAY_RATE_BURST":      "100000",
		"SHOPMESH_INVENTORY_AUTO_RESTOCK":  "false",
		"SHOPMESH_GATEWAY_REQUEST_TIMEOUT": "10s",
	}
	addrOf := map[string]string{}
	for _, svc := range services {
		up := strings.ToUpper(svc)
		dbURL, err := s.createDatabase(ctx, "bench_"+id+"_"+label+"_"+svc)
		if err != nil {
			return s, err
		}
		port, err := localserver.FreePort()
		if err != nil {
			return s, err
		}
		addrOf[svc] = "127.0.0.1:" + strconv.Itoa(port)
		vars["SHOPMESH_"+up+"_DATABASE_URL"] = dbURL
		vars["SHOPMESH_"+up+"_AMQP_URL"] = amqpURL
		vars["SHOPMESH_"+up+"_HTTP_ADDR"] = addrOf[svc]
		vars["SHOPMESH_"+up+"_URL"] = "http://" + addrOf[svc]
	}
	port, err := localserver.FreePort()
	if err != nil {
		return s, err
	}
	vars["SHOPMESH_GATEWAY_ADDR"] = "127.0.0.1:" + strconv.Itoa(port)
	s.gateway = "http://" + vars["SHOPMESH_GATEWAY_ADDR"]
	// The inherited environment without any SHOPMESH_ variable: the shared
	// platform's must not leak in.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHOPMESH_") {
			s.env = append(s.env, kv)
		}
	}
	for k, v := range vars {
		s.env = append(s.env, k+"="+v)
	}

	if out, err := s.command(ctx, append([]string{"migrate", "--skip-provision"}, services...)...); err != nil {
		return s, fmt.Errorf("shopmesh migrate: %w\n%s", err, out)
	}
	if together {
		p := &sysProcess{name: "all", target: "all", addrs: []string{vars["SHOPMESH_GATEWAY_ADDR"]}}
		for _, svc := range services {
			p.addrs = append(p.addrs, addrOf[svc])
		}
		s.procs = append(s.procs, p)
	} else {
		for _, svc := range services {
			s.procs = append(s.procs, &sysProcess{name: svc, target: svc, addrs: []string{addrOf[svc]}})
		}
		s.procs = append(s.procs, &sysProcess{name: "gateway", target: "gateway", addrs: []string{vars["SHOPMESH_GATEWAY_ADDR"]}})
	}
	for _, p := range s.procs {
		if err := s.start(p); err != nil {
			return s, err
		}
	}
	if err := s.waitReady(ctx, 2*time.Minute); err != nil {
		return s, err
	}
	return s, nil
}

func (s *system) start(p *sysProcess) error {
	logf, err := os.Create(filepath.Join(s.dir, p.name+".log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.binary, "serve", p.target)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := p.proc.Start(cmd, nil); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	return nil
}

// waitReady polls every address's /readyz (the gateway's /healthz: its
// /readyz asks every upstream) until all answer, a process exits, or
// timeout passes.
func (s *system) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	gateway := strings.TrimPrefix(s.gateway, "http://")
	return waitFor(ctx, 200*time.Millisecond, s.label+" system ready", func(ctx context.Context) (bool, error) {
		for _, p := range s.procs {
			if !p.proc.Running() {
				return false, fmt.Errorf("%s exited:\n%s", p.name, localserver.TailFile(filepath.Join(s.dir, p.name+".log"), 15))
			}
			for _, addr := range p.addrs {
				path := "/readyz"
				if addr == gateway {
					path = "/healthz"
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
				if err != nil {
					return false, err
				}
				resp, err := s.http.Do(req)
				if err != nil {
					return false, nil // not listening yet
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
					return false, nil
				}
			}
		}
		return true, nil
	})
}

func (s *system) command(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.binary, args...)
	cmd.Env = s.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd.CombinedOutput()
}

// createAdmin creates an administrator and logs it in: products are
// seeded through the admin API. The login is the user service's first
// password hash, whose memory stays resident: idle RSS is sampled before.
func (s *system) createAdmin(ctx context.Context, id string) error {
	email := "admin." + id + "." + s.label + "@bench.example.com"
	password := "bench admin password"
	if out, err := s.command(ctx, "user", "create-admin", "--email", email, "--password", password); err != nil {
		return fmt.Errorf("user create-admin: %w\n%s", err, out)
	}
	var tok struct {
		Token string `json:"token"`
	}
	c := &apiClient{base: s.gateway, http: s.http}
	if err := c.expect(ctx, http.StatusOK, &tok, http.MethodPost, "/api/v1/auth/login", map[string]string{"email": email, "password": password}); err != nil {
		return fmt.Errorf("admin login: %w", err)
	}
	s.token = tok.Token
	return nil
}

// pids returns the running processes' IDs by name.
func (s *system) pids() map[string]int {
	out := map[string]int{}
	for _, p := range s.procs {
		if p.proc.Running() {
			out[p.name] = p.proc.PID()
		}
	}
	return out
}

// close stops the processes (SIGTERM, then SIGKILL), drops the databases
// and deletes the vhost, with its own deadline so that a cancelled run
// still cleans up. The process logs are removed too.
func (s *system) close() error {
	var errs []error
	for _, p := range s.procs {
		_ = p.proc.Stop(syscall.SIGTERM, 15*time.Second) // killed after that, which is all close needs
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if len(s.databases) > 0 {
		conn, err := pgx.Connect(ctx, s.pgAdmin)
		if err != nil {
			errs = append(errs, fmt.Errorf("drop databases: %w", err))
		} else {
			for _, db := range s.databases {
				if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)"); err != nil {
					errs = append(errs, fmt.Errorf("drop database %s: %w", db, err))
				}
			}
			conn.Close(ctx)
		}
	}
	if s.mgmt != nil && s.vhost != "" {
		if err := s.mgmt.do(ctx, http.MethodDelete, "/api/vhosts/"+url.PathEscape(s.vhost), nil); err != nil {
			errs = append(errs, fmt.Errorf("delete vhost %s: %w", s.vhost, err))
		}
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
	return errors.Join(errs...)
}

func (s *system) createDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, s.pgAdmin)
	if err != nil {
		return "", fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	s.databases = append(s.databases, name)
	u, err := url.Parse(s.pgAdmin)
	if err != nil {
		return "", err
	}
	u.Path, u.RawPath = "/"+name, ""
	return u.String(), nil
}

// createVHost creates the system's vhost, grants the management user and
// the AMQP URL's user every permission on it, and returns amqpURL pointed
// at it.
func (s *system) createVHost(ctx context.Context, amqpURL string) (string, error) {
	if err := s.mgmt.do(ctx, http.MethodPut, "/api/vhosts/"+url.PathEscape(s.vhost), struct{}{}); err != nil {
		s.vhost = "" // nothing to delete
		return "", fmt.Errorf("create vhost: %w", err)
	}
	base, err := url.Parse(amqpURL)
	if err != nil {
		return "", fmt.Errorf("amqp url: %w", err)
	}
	users := []string{s.mgmt.user}
	if u := base.User.Username(); u != "" && u != s.mgmt.user {
		users = append(users, u)
	}
	for _, u := range users {
		perms := map[string]string{"configure": ".*", "write": ".*", "read": ".*"}
		if err := s.mgmt.do(ctx, http.MethodPut, "/api/permissions/"+url.PathEscape(s.vhost)+"/"+url.PathEscape(u), perms); err != nil {
			return "", fmt.Errorf("permissions on vhost %s: %w", s.vhost, err)
		}
	}
	v := *base
	v.Path = "/" + s.vhost
	v.RawPath = "/" + url.PathEscape(s.vhost)
	return v.String(), nil
}

// management is a minimal client of RabbitMQ's management API.
type management struct {
	base           url.URL
	user, password string
	http           *http.Client
}

func newManagement(raw string) (*management, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("management url %q is not a URL", raw)
	}
	pw, _ := u.User.Password()
	return &management{base: url.URL{Scheme: u.Scheme, Host: u.Host}, user: u.User.Username(), password: pw,
		http: &http.Client{Timeout: 15 * time.Second}}, nil
}

func (m *management) do(ctx context.Context, method, path string, body any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, m.base.String()+path, rd)
	if err != nil {
		return err
	}
	req.URL.RawPath = path // keep %2F and friends escaped
	req.SetBasicAuth(m.user, m.password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode >= 300 && !(method == http.MethodDelete && resp.StatusCode == http.StatusNotFound) {
		return fmt.Errorf("%s %s = %s %s", method, path, resp.Status, msg)
	}
	return nil
}

// rssBytes returns a process's resident set (VmRSS in /proc/<pid>/status).
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "12345 kB"
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
}
