package servicetest

import (
	"context"
	"io/fs"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/internal/pgmigrate"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

// StoreDatabase is a fresh database migrated as service's own (the
// outbox's tables, then migrations, versioned in <service>_schema_version),
// and the service's outbox: for tests of a store without the service
// running. The pool closes when the test ends.
func StoreDatabase(ctx context.Context, t testing.TB, service string, migrations fs.FS) (*pgxpool.Pool, *outbox.Outbox) {
	t.Helper()
	pool, err := pgxpool.New(ctx, testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := outbox.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	if err := pgmigrate.Up(ctx, pool, migrations, service+"_schema_version", nil); err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.New(service)
	if err != nil {
		t.Fatal(err)
	}
	return pool, ob
}
