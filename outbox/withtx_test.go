package outbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shopmesh/shopmesh/outbox"
)

// WithTx on a pool spends no round trip on its BEGIN or its COMMIT: the
// BEGIN travels with the first statement, what fn holds (Publish,
// SendAtCommit) with the COMMIT, and a read after a held write sees it.
// Each case counts the sends of a traced pool; the same work with pgx's
// own transaction costs two more (a BEGIN and a COMMIT of their own) and
// one per held write.
func TestWithTxSpendsNoRoundTripsOfItsOwn(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if _, err := f.pool.Exec(f.ctx, `CREATE TABLE wt_rows (n INT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	pool, counted := f.tracedPool("")
	held := func(tx pgx.Tx, n int) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO wt_rows VALUES ($1)`, n)
		return outbox.SendAtCommit(f.ctx, tx, b)
	}
	event := func(id string) outbox.Event {
		return outbox.Event{ID: id, Type: tickType, AggregateID: "a", Payload: tick{Seq: 1}}
	}
	for _, tc := range []struct {
		name  string
		fn    func(tx pgx.Tx) error
		sends int64
		rows  []int  // wt_rows after the transaction
		event string // an event id the outbox holds after it
	}{
		{"nothing sent or held", func(pgx.Tx) error { return nil }, 0, nil, ""},
		{"held writes only", func(tx pgx.Tx) error {
			if err := f.ob.Publish(f.ctx, tx, event("e-held")); err != nil {
				return err
			}
			return held(tx, 1)
		}, 1, []int{1}, "e-held"},
		{"a read, then held writes", func(tx pgx.Tx) error {
			var k int
			if err := tx.QueryRow(f.ctx, `SELECT count(*) FROM wt_rows WHERE n > $1`, 0).Scan(&k); err != nil {
				return err
			}
			if k != 1 {
				return errors.New("the read did not see the committed row")
			}
			if err := held(tx, 2); err != nil {
				return err
			}
			return f.ob.Publish(f.ctx, tx, event("e-read"))
		}, 2, []int{1, 2}, "e-read"},
		{"a held write, then a read that sees it", func(tx pgx.Tx) error {
			if err := held(tx, 3); err != nil {
				return err
			}
			var k int
			if err := tx.QueryRow(f.ctx, `SELECT count(*) FROM wt_rows WHERE n = $1`, 3).Scan(&k); err != nil {
				return err
			}
			if k != 1 {
				return errors.New("the read did not see the held write")
			}
			return nil
		}, 2, []int{1, 2, 3}, ""},
		{"a query read to its end, not closed", func(tx pgx.Tx) error {
			rows, err := tx.Query(f.ctx, `SELECT n FROM wt_rows WHERE n > $1`, 0)
			if err != nil {
				return err
			}
			k := 0
			for rows.Next() { // pgx closes rows that are read to their end
				k++
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if k != 3 {
				return errors.New("the query did not read the committed rows")
			}
			return f.ob.Publish(f.ctx, tx, event("e-rows"))
		}, 2, []int{1, 2, 3}, "e-rows"},
		{"an exec with arguments, a batch, an exec without", func(tx pgx.Tx) error {
			if _, err := tx.Exec(f.ctx, `INSERT INTO wt_rows VALUES ($1)`, 4); err != nil {
				return err
			}
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO wt_rows VALUES ($1)`, 5)
			if err := tx.SendBatch(f.ctx, b).Close(); err != nil {
				return err
			}
			// pgx sends an exec without arguments with the simple
			// protocol, which takes several statements in one string.
			_, err := tx.Exec(f.ctx, `INSERT INTO wt_rows VALUES (6); INSERT INTO wt_rows VALUES (7)`)
			return err
		}, 4, []int{1, 2, 3, 4, 5, 6, 7}, ""},
	} {
		before := counted.n.Load()
		if err := f.ob.WithTx(f.ctx, pool, tc.fn); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := counted.n.Load() - before; got != tc.sends {
			t.Errorf("%s: %d sends, want %d", tc.name, got, tc.sends)
		}
		if got := f.count(`SELECT count(*) FROM wt_rows`); got != len(tc.rows) {
			t.Errorf("%s: %d rows committed, want %v", tc.name, got, tc.rows)
		}
		if tc.event != "" && f.count(`SELECT count(*) FROM watermill_outbox WHERE uuid = $1`, tc.event) != 1 {
			t.Errorf("%s: event %s not in the outbox", tc.name, tc.event)
		}
	}
}

// What a failed WithTx sent and held is rolled back: fn's error, a held
// write that fails at the commit (the error names the commit), a read of
// no rows reported as pgx.ErrNoRows; the connection goes back to the pool
// usable.
func TestWithTxRollsBackEverythingOnFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if _, err := f.pool.Exec(f.ctx, `CREATE TABLE wt_rows (n INT PRIMARY KEY); INSERT INTO wt_rows VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	// One connection: a transaction that did not give it back would leave
	// the next one waiting until the deadline.
	cfg := f.pool.Config()
	cfg.MaxConns = 1
	pool := f.openPool(cfg)
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	failed := errors.New("fn failed")
	write := func(tx pgx.Tx, n int) error {
		if _, err := tx.Exec(ctx, `INSERT INTO wt_rows VALUES ($1)`, n); err != nil {
			return err
		}
		return f.ob.Publish(ctx, tx, outbox.Event{ID: "e-rolled-back", Type: tickType, AggregateID: "a", Payload: tick{}})
	}
	err := f.ob.WithTx(ctx, pool, func(tx pgx.Tx) error {
		if err := write(tx, 2); err != nil {
			return err
		}
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatalf("fn's failure: WithTx returned %v", err)
	}
	err = f.ob.WithTx(ctx, pool, func(tx pgx.Tx) error {
		if err := write(tx, 3); err != nil {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO wt_rows VALUES ($1)`, 1) // a duplicate key, found at the commit
		return outbox.SendAtCommit(ctx, tx, b)
	})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		t.Fatalf("a held write failing at the commit: WithTx returned %v, want the unique violation", err)
	}
	err = f.ob.WithTx(ctx, pool, func(tx pgx.Tx) error {
		var n int
		return tx.QueryRow(ctx, `SELECT n FROM wt_rows WHERE n = $1`, 99).Scan(&n)
	})
	if !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("a read of no rows: WithTx returned %v, want pgx.ErrNoRows", err)
	}
	if got := f.count(`SELECT count(*) FROM wt_rows`); got != 1 {
		t.Errorf("%d rows after three failed transactions, want the 1 there before", got)
	}
	if got := f.count(`SELECT count(*) FROM watermill_outbox`); got != 0 {
		t.Errorf("%d events in the outbox after failed transactions, want 0", got)
	}
	if err := f.ob.WithTx(ctx, pool, func(tx pgx.Tx) error { return write(tx, 4) }); err != nil {
		t.Fatalf("a transaction after the failed ones: %v", err)
	}
	if got := f.count(`SELECT count(*) FROM wt_rows`); got != 2 {
		t.Errorf("%d rows after a committed transaction, want 2", got)
	}
}
