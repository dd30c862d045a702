package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// serverStartTimeout bounds how long a private server may take to become
// ready, and serverStopTimeout how long it may take to shut down.
const (
	serverStartTimeout = 90 * time.Second
	serverStopTimeout  = 60 * time.Second
)

// postgresServer is a private PostgreSQL cluster the harness may kill and
// start again without touching the shared platform. It listens on a free
// port on 127.0.0.1 and runs with fsync off: a SIGKILL of the postmaster
// loses nothing committed (the kernel keeps the pages), only a machine
// crash would, which no scenario simulates.
type postgresServer struct {
	bin      string
	dir      string
	data     string
	log      string
	port     int
	password string
	cred     *syscall.Credential
	proc     daemon
}

const postgresSuperuser = "shopmesh_admin"

// startPostgres initialises and starts a private cluster in a new
// temporary directory (not under the run directory: the cluster's user must
// be able to reach it).
func startPostgres() (*postgresServer, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	cred, err := serverUser()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "shopmesh-chaos-pg-")
	if err != nil {
		return nil, err
	}
	s := &postgresServer{
		bin: bin, dir: dir, data: filepath.Join(dir, "data"), log: filepath.Join(dir, "postgres.log"),
		password: randomHex(16), cred: cred,
	}
	if err := s.init(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("private PostgreSQL: %w", err)
	}
	for attempt := 1; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			_ = s.Close()
			return nil, err
		}
		err = s.start()
		if err == nil {
			return s, nil
		}
		if attempt == 3 || !strings.Contains(tailFile(s.log, 20), "could not bind") {
			_ = s.Close()
			return nil, fmt.Errorf("private PostgreSQL: %w", err)
		}
	}
}

func postgresBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("initdb not found on PATH or in /usr/lib/postgresql/*/bin (install PostgreSQL or run `make up`)")
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func (s *postgresServer) init() error {
	if err := chown(s.dir, s.cred); err != nil {
		return err
	}
	pwfile := filepath.Join(s.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.password+"\n"), 0o600); err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	if err := chown(pwfile, s.cred); err != nil {
		return err
	}
	initdb := func(locale ...string) ([]byte, error) {
		args := append([]string{"--pgdata", s.data, "--username", postgresSuperuser, "--pwfile", pwfile,
			"--auth", "scram-sha-256", "--encoding", "UTF8", "--no-sync"}, locale...)
		cmd := exec.Command(filepath.Join(s.bin, "initdb"), args...)
		cmd.Dir = s.dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
		return cmd.CombinedOutput()
	}
	out, err := initdb("--locale", "C.UTF-8")
	if err != nil && strings.Contains(string(out), "locale") {
		_ = os.RemoveAll(s.data)
		out, err = initdb("--no-locale")
	}
	_ = os.Remove(pwfile)
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	conf, err := os.OpenFile(filepath.Join(s.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open postgresql.conf: %w", err)
	}
	defer conf.Close()
	// Every service keeps a pool of up to 10 connections, some run twice.
	if _, err := conf.WriteString(`
# chaos: a private throwaway cluster.
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
max_connections = 300
shared_buffers = 64MB
include_if_exists = 'port.conf'
`); err != nil {
		return fmt.Errorf("write postgresql.conf: %w", err)
	}
	hba := "host all all 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(s.data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	return chown(filepath.Join(s.data, "pg_hba.conf"), s.cred)
}

// URL is the superuser's URL for database postgres.
func (s *postgresServer) URL() string {
	u := url.URL{
		Scheme: "postgres", User: url.UserPassword(postgresSuperuser, s.password),
		Host: "127.0.0.1:" + strconv.Itoa(s.port), Path: "/postgres", RawQuery: "sslmode=disable",
	}
	return u.String()
}

func (s *postgresServer) start() error {
	portConf := filepath.Join(s.data, "port.conf")
	if err := os.WriteFile(portConf, []byte(fmt.Sprintf("port = %d\n", s.port)), 0o600); err != nil {
		return fmt.Errorf("write port.conf: %w", err)
	}
	if err := chown(portConf, s.cred); err != nil {
		return err
	}
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.data)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := s.proc.start(cmd, s.cred); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := s.proc.done()
	err = waitFor(serverStartTimeout, 50*time.Millisecond, func() error {
		select {
		case <-exited:
			return errExited
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, s.URL())
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
	if err != nil {
		s.proc.kill()
		return fmt.Errorf("not ready on 127.0.0.1:%d: %w\n%s", s.port, err, tailFile(s.log, 30))
	}
	return nil
}

// Kill SIGKILLs the postmaster and its backends at once, as a crash would.
func (s *postgresServer) Kill() { s.proc.kill() }

// Start starts the killed cluster again on its port (crash recovery).
func (s *postgresServer) Start() error { return s.start() }

// Close kills the cluster and removes its files.
func (s *postgresServer) Close() error {
	s.proc.kill()
	return os.RemoveAll(s.dir)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}
