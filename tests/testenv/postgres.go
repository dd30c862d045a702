package testenv

import (
	"context"
	"testing"

	"github.com/shopmesh/shopmesh/internal/localserver"
)

// PostgresServer is a private PostgreSQL cluster for one test, which the test
// may stop, kill and start again. It listens on a free port on 127.0.0.1.
type PostgresServer struct {
	t  testing.TB
	pg *localserver.Postgres
}

// StartPostgres initialises and starts a private cluster. When the test ends
// the cluster is killed and its files removed. The data directory is
// initialised with fsync off: that loses nothing when processes are killed,
// only when the machine crashes, which no test simulates.
func StartPostgres(t testing.TB) *PostgresServer {
	t.Helper()
	pg := startPrivate(t, "PostgreSQL", "shopmesh-pg-", func(ctx context.Context, dir string) (*localserver.Postgres, error) {
		return localserver.StartPostgres(ctx, dir, localserver.PostgresOptions{})
	})
	return &PostgresServer{t: t, pg: pg}
}

// URL returns the superuser's URL for database postgres.
func (s *PostgresServer) URL() string { return s.pg.URL() }

// Start starts the stopped or killed cluster on its port and waits until it
// accepts connections. It fails the test when it does not within a minute.
func (s *PostgresServer) Start() {
	s.t.Helper()
	if err := s.pg.Start(context.Background()); err != nil {
		s.t.Fatalf("testenv: private PostgreSQL: %v", err)
	}
}

// Stop shuts the cluster down cleanly (fast mode: open connections are
// disconnected, committed work is kept) and waits for it to exit.
func (s *PostgresServer) Stop() {
	s.t.Helper()
	if err := s.pg.Stop(); err != nil {
		s.t.Errorf("testenv: stop private PostgreSQL: %v", err)
	}
}

// Kill SIGKILLs the postmaster and its backends at once, as a crash of the
// machine or container would, and waits for the postmaster to be gone. Start
// then runs crash recovery.
func (s *PostgresServer) Kill() {
	s.t.Helper()
	s.pg.Kill()
}
