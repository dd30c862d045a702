package localserver

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresSuperuser is the bootstrap superuser of private clusters.
const postgresSuperuser = "shopmesh_admin"

// PostgresOptions configures a private cluster. The zero value is ready to
// use.
type PostgresOptions struct {
	// Settings are lines appended to postgresql.conf, such as
	// "max_connections = 300".
	Settings []string
	// StartTimeout bounds each start until the cluster accepts connections;
	// a minute when zero.
	StartTimeout time.Duration
}

// Postgres is a private PostgreSQL cluster. It listens on a free port on
// 127.0.0.1 only (no Unix socket), accepts only password logins of its
// superuser, and runs with fsync off: a SIGKILL of the postmaster loses
// nothing committed (the kernel keeps the pages), only a crash of the
// machine would.
type Postgres struct {
	bin          string // directory holding initdb and postgres
	dir          string // everything the cluster owns
	data         string
	log          string
	port         int
	password     string
	cred         *syscall.Credential
	startTimeout time.Duration
	proc         Process
}

// StartPostgres initialises a cluster in dir (created when missing) and
// starts it. PostgreSQL refuses to run as root, so under root the cluster
// runs as the "shopmesh" system user the local platform creates, or as
// "postgres": dir and every directory above it must then be reachable by
// that user (a directory from os.MkdirTemp("", ...) is; t.TempDir is not).
// On error nothing is left running and dir is removed; otherwise Close does
// that.
func StartPostgres(ctx context.Context, dir string, opts PostgresOptions) (*Postgres, error) {
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	s := &Postgres{
		dir:          dir,
		data:         filepath.Join(dir, "data"),
		log:          filepath.Join(dir, "postgres.log"),
		password:     randomHex(16),
		startTimeout: cmp.Or(opts.StartTimeout, defaultStartTimeout),
	}
	if err := s.setUp(ctx, opts.Settings); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("private PostgreSQL: %w", err)
	}
	return s, nil
}

// setUp finds the binaries, initialises the cluster and starts it on a free
// port, trying another when the chosen one was taken before it was bound.
func (s *Postgres) setUp(ctx context.Context, settings []string) error {
	var err error
	if s.bin, err = postgresBin(); err != nil {
		return err
	}
	if s.cred, err = serverUser(); err != nil {
		return err
	}
	if err := s.init(settings); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		if s.port, err = FreePort(); err != nil {
			return err
		}
		err = s.Start(ctx)
		if err == nil || attempt == 3 || !strings.Contains(TailFile(s.log, 20), "could not bind") {
			return err
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
	return "", fmt.Errorf("PostgreSQL %w: initdb not found on PATH or in /usr/lib/postgresql/*/bin", ErrNotInstalled)
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// serverUser returns the credential private clusters run under: nil (the
// current user) unless running as root, which PostgreSQL refuses; then the
// "shopmesh" system user that deploy/local/platform.sh creates, or
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
	return nil, fmt.Errorf(`running as root and neither system user "shopmesh" nor "postgres" exists to run PostgreSQL: %w`, ErrNotInstalled)
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

// writeOwned writes a file the cluster's user owns.
func (s *Postgres) writeOwned(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return chown(path, s.cred)
}

func (s *Postgres) init(settings []string) error {
	if err := chown(s.dir, s.cred); err != nil {
		return err
	}
	pwfile := filepath.Join(s.dir, "pwfile")
	if err := s.writeOwned(pwfile, s.password+"\n"); err != nil {
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
	// port.conf is rewritten by every start, after the chosen port.
	extra := "\n# localserver: a private throwaway cluster.\n" +
		"listen_addresses = '127.0.0.1'\n" +
		"unix_socket_directories = ''\n" +
		"fsync = off\n"
	for _, line := range settings {
		extra += line + "\n"
	}
	if _, err := conf.WriteString(extra + "include_if_exists = 'port.conf'\n"); err != nil {
		return fmt.Errorf("write postgresql.conf: %w", err)
	}
	return s.writeOwned(filepath.Join(s.data, "pg_hba.conf"), "host all all 127.0.0.1/32 scram-sha-256\n")
}

// URL returns the superuser's URL for database postgres.
func (s *Postgres) URL() string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(postgresSuperuser, s.password),
		Host:     s.Addr(),
		Path:     "/postgres",
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Addr returns the cluster's listen address, 127.0.0.1:<port>.
func (s *Postgres) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Start starts the stopped or killed cluster on its port (after a kill,
// PostgreSQL runs crash recovery and replaces the stale postmaster.pid, whose
// process is reaped by then) and waits until it accepts connections.
func (s *Postgres) Start(ctx context.Context) error {
	if err := s.writeOwned(filepath.Join(s.data, "port.conf"), fmt.Sprintf("port = %d\n", s.port)); err != nil {
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
	if err := s.proc.Start(cmd, s.cred); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	err = waitReady(ctx, &s.proc, s.startTimeout, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, s.URL())
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
	if err != nil {
		s.proc.Kill()
		return fmt.Errorf("not ready on %s: %w\n%s", s.Addr(), err, TailFile(s.log, 30))
	}
	return nil
}

// Stop shuts the cluster down cleanly (fast mode: open connections are
// disconnected, committed work is kept) and waits for it to exit. It returns
// an error when the cluster had to be killed after a minute.
func (s *Postgres) Stop() error { return s.proc.Stop(syscall.SIGINT, stopTimeout) }

// Kill SIGKILLs the postmaster and its backends at once, as a crash of the
// machine or container would, and waits until they are gone. Start then runs
// crash recovery.
func (s *Postgres) Kill() { s.proc.Kill() }

// KillNow SIGKILLs the postmaster and its backends without waiting, to
// crash the cluster at an exact moment; Kill then waits until they are gone.
func (s *Postgres) KillNow() { s.proc.KillNow() }

// Running reports whether the postmaster runs.
func (s *Postgres) Running() bool { return s.proc.Running() }

// Close kills the cluster and removes its directory.
func (s *Postgres) Close() error {
	s.proc.Kill() // a clean shutdown would only take longer
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove %s: %w", s.dir, err)
	}
	return nil
}
