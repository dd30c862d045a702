package localserver

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/internal/procfs"
)

// children returns the live processes whose parent is pid.
func children(pid int) []int {
	var out []int
	for _, st := range procfs.All() {
		if st.PPID == pid && st.Alive() {
			out = append(out, st.PID)
		}
	}
	return out
}

// serverDir returns a new directory for a server's files, reachable by a
// PostgreSQL cluster's user (t.TempDir is not); Close removes it.
func serverDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "shopmesh-localserver-")
	if err != nil {
		t.Fatalf("create server directory: %v", err)
	}
	return dir
}

func TestProcessKillTakesWorkersInTheirOwnSessions(t *testing.T) {
	// The worker leaves the group, as a PostgreSQL backend does; the
	// bystander is another server's process and must survive.
	bystander := exec.Command("sleep", "600")
	if err := bystander.Start(); err != nil {
		t.Fatalf("start bystander: %v", err)
	}
	defer func() { _ = bystander.Process.Kill(); _ = bystander.Wait() }()

	var p Process
	if err := p.Start(exec.Command("sh", "-c", "setsid sleep 600 & wait"), nil); err != nil {
		t.Fatalf("start: %v", err)
	}
	var workers []int
	deadline := time.Now().Add(10 * time.Second)
	for len(workers) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		workers = children(p.PID())
	}
	if len(workers) != 1 {
		t.Fatalf("workers of sh = %v, want one", workers)
	}
	if err := p.Start(exec.Command("true"), nil); err == nil {
		t.Errorf("second Start while running succeeded, want an error")
	}

	p.Kill()
	if p.Running() {
		t.Errorf("Running after Kill = true, want false")
	}
	if alive(workers[0]) {
		t.Errorf("worker %d alive after Kill, want it gone", workers[0])
	}
	if !alive(bystander.Process.Pid) {
		t.Errorf("bystander %d killed too, want it untouched", bystander.Process.Pid)
	}
	if p.PID() == 0 {
		t.Errorf("PID after Kill = 0, want the last process's ID")
	}
	if err := p.Start(exec.Command("sleep", "600"), nil); err != nil {
		t.Errorf("Start after Kill: %v", err)
	}
	if err := p.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

func TestPostgresRestartsAtOnceAfterKill(t *testing.T) {
	t.Parallel()
	ctx, dir := t.Context(), serverDir(t)
	s, err := StartPostgres(ctx, dir, PostgresOptions{Settings: []string{"max_connections = 42"}})
	if err != nil {
		t.Fatalf("StartPostgres: %v", err)
	}
	defer s.Close()
	maxConnections := func() (string, error) {
		conn, err := pgx.Connect(ctx, s.URL())
		if err != nil {
			return "", err
		}
		defer conn.Close(ctx)
		var v string
		return v, conn.QueryRow(ctx, "SHOW max_connections").Scan(&v)
	}
	if got, err := maxConnections(); got != "42" || err != nil {
		t.Errorf("max_connections = %q, %v; want 42 (from Settings)", got, err)
	}
	// Open backends while killing: one still attached to the shared memory
	// would make the start right after fail.
	for range 3 {
		conn, err := pgx.Connect(ctx, s.URL())
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer conn.Close(context.Background())
	}
	for i := range 3 {
		s.KillNow()
		s.Kill()
		if err := s.Start(ctx); err != nil {
			t.Fatalf("Start right after kill %d: %v", i+1, err)
		}
	}
	if got, err := maxConnections(); got != "42" || err != nil {
		t.Errorf("max_connections after restarts = %q, %v; want 42", got, err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat %s after Close: %v, want it removed", dir, err)
	}
}

func TestRabbitMQRestartsAfterKillNow(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// More schedulers than CPUs, so that a node left at the runtime's
	// default (one per CPU) would show.
	schedulers := runtime.NumCPU() + 1
	s, err := StartRabbitMQ(ctx, serverDir(t), RabbitMQOptions{NodePrefix: "shopmesh-l", LogLevel: "warning", Schedulers: schedulers})
	if err != nil {
		t.Fatalf("StartRabbitMQ: %v", err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.Node(), "shopmesh-l") || !strings.HasSuffix(s.Node(), "@localhost") {
		t.Errorf("Node() = %q, want shopmesh-l<hex>@localhost", s.Node())
	}
	s.KillNow()
	s.Kill()
	if s.Running() {
		t.Errorf("Running after Kill = true, want false")
	}
	if err := s.Start(ctx); err != nil {
		t.Fatalf("Start after kill: %v", err)
	}
	conn, err := amqp.Dial(s.URL())
	if err != nil {
		t.Fatalf("dial after restart: %v", err)
	}
	conn.Close()
	if got, err := s.eval(ctx, "erlang:system_info(schedulers_online)."); err != nil || got != strconv.Itoa(schedulers) {
		t.Errorf("schedulers online after restart = %q (%v), want %d", got, err, schedulers)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

func TestRabbitMQRefusesNegativeSchedulersBeforeCreatingItsDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	_, err := StartRabbitMQ(t.Context(), dir, RabbitMQOptions{Schedulers: -1})
	if err == nil || !strings.Contains(err.Error(), "-1 schedulers") {
		t.Fatalf("StartRabbitMQ with -1 schedulers: %v, want it refused for its schedulers", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat %s after the refusal: %v, want it never created", dir, err)
	}
}
