package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresServer is a private PostgreSQL cluster for one test, which the test
// may stop, kill and start again. It listens on a free port on 127.0.0.1.
type PostgresServer struct {
	t        testing.TB
	bin      string // directory holding initdb and postgres
	dir      string // everything the cluster owns; removed at cleanup
	data     string
	log      string
	port     int
	password string
	cred     *syscall.Credential
	proc     daemon
}

// postgresSuperuser is the bootstrap superuser of private clusters.
const postgresSuperuser = "shopmesh_admin"

// StartPostgres initialises and starts a private cluster. When the test ends
// the cluster is killed and its files removed. The data directory is
// initialised with fsync off: that loses nothing when processes are killed,
// only when the machine crashes, which no test simulates.
func StartPostgres(t testing.TB) *PostgresServer {
	t.Helper()
	bin, err := postgresBin()
	if err != nil {
		t.Fatalf("testenv: %v; %s", err, startHint)
	}
	cred, err := serverUser()
	if err != nil {
		t.Fatalf("testenv: %v; %s", err, startHint)
	}
	// Not t.TempDir: the directory must be reachable by the cluster's user.
	dir, err := os.MkdirTemp("", "shopmesh-pg-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	s := &PostgresServer{
		t:        t,
		bin:      bin,
		dir:      dir,
		data:     filepath.Join(dir, "data"),
		log:      filepath.Join(dir, "postgres.log"),
		password: randomHex(16),
		cred:     cred,
	}
	t.Cleanup(func() {
		s.proc.kill() // graceful shutdown would only slow the test down
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testenv: remove %s: %v", dir, err)
		}
	})
	if err := s.init(); err != nil {
		t.Fatalf("testenv: private PostgreSQL: %v", err)
	}
	// A free port can be taken between choosing and binding it: try again.
	for attempt := 1; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		err = s.start()
		if err == nil {
			return s
		}
		if attempt == 3 || !strings.Contains(tail(s.log, 20), "could not bind") {
			t.Fatalf("testenv: private PostgreSQL: %v", err)
		}
	}
}

// postgresBin finds the directory holding initdb and postgres: PATH first,
// then the newest /usr/lib/postgresql/<version>/bin.
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
	return "", fmt.Errorf("initdb not found on PATH or in /usr/lib/postgresql/*/bin")
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func (s *PostgresServer) init() error {
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
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
		return cmd.CombinedOutput()
	}
	// C.UTF-8 as on the platform cluster; plain C where the system lacks it.
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
	_, err = conf.WriteString(`
# testenv: a private throwaway cluster.
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
include_if_exists = 'port.conf'
`)
	if err != nil {
		return fmt.Errorf("write postgresql.conf: %w", err)
	}
	hba := "host all all 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(s.data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	return chown(filepath.Join(s.data, "pg_hba.conf"), s.cred)
}

// URL returns the superuser's URL for database postgres.
func (s *PostgresServer) URL() string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(postgresSuperuser, s.password),
		Host:     "127.0.0.1:" + strconv.Itoa(s.port),
		Path:     "/postgres",
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Start starts the stopped or killed cluster on its port and waits until it
// accepts connections. It fails the test when it does not within a minute.
func (s *PostgresServer) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("testenv: private PostgreSQL: %v", err)
	}
}

func (s *PostgresServer) start() error {
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
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.data)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := s.proc.start(cmd, s.cred); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := s.proc.running()
	err = waitFor(startTimeout, 50*time.Millisecond, func() error {
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
		return fmt.Errorf("not ready on 127.0.0.1:%d: %w\n%s", s.port, err, tail(s.log, 30))
	}
	return nil
}

// Stop shuts the cluster down cleanly (fast mode: open connections are
// disconnected, committed work is kept) and waits for it to exit.
func (s *PostgresServer) Stop() {
	s.t.Helper()
	if err := s.proc.stop(syscall.SIGINT, stopTimeout); err != nil {
		s.t.Errorf("testenv: stop private PostgreSQL: %v", err)
	}
}

// Kill SIGKILLs the postmaster and its backends at once, as a crash of the
// machine or container would, and waits for the postmaster to be gone. Start
// then runs crash recovery.
func (s *PostgresServer) Kill() {
	s.t.Helper()
	s.proc.kill()
}
