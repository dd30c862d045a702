package outbox_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Within joins a transaction it is given (no savepoint: what fn wrote stays
// until the owner commits or rolls back) and runs in a transaction of its own
// on a pool, committing it.
func TestWithinJoinsTheCallersTransaction(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if _, err := f.pool.Exec(f.ctx, `CREATE TABLE within_rows (n INT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	insert := func(n int, fail error) func(pgx.Tx) error {
		return func(tx pgx.Tx) error {
			if _, err := tx.Exec(f.ctx, `INSERT INTO within_rows VALUES ($1)`, n); err != nil {
				return err
			}
			return fail
		}
	}
	tx, err := f.pool.Begin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(f.ctx) //nolint:errcheck // rolled back on purpose below
	failed := errors.New("fn failed")
	if err := f.ob.Within(f.ctx, tx, insert(1, failed)); !errors.Is(err, failed) {
		t.Fatalf("Within returned %v, want fn's error", err)
	}
	var n int
	if err := tx.QueryRow(f.ctx, `SELECT count(*) FROM within_rows`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("inside the caller's transaction fn's write was undone (%d rows): Within used a savepoint", n)
	}
	if err := tx.Rollback(f.ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.ob.Within(f.ctx, f.pool, insert(2, nil)); err != nil {
		t.Fatal(err)
	}
	if k := f.count(`SELECT count(*) FROM within_rows`); k != 1 {
		t.Errorf("%d rows after the rolled-back transaction and one committed Within, want 1", k)
	}
}
