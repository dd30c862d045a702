package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

// Sent rows stay in the outbox for the retention window (a week by default),
// so the relay's batch read, its check for waiting events and the backlog
// count must cost the same however much sent history lies behind the
// cursor: each is one index range that starts at the cursor, never a walk
// over everything sent before it.
func TestOutboxReadsSkipSentHistory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const sent, pending = 20000, 10
	// Rows as up to 1,000 long-committed transactions wrote them, in blocks
	// of consecutive transaction ids from 3 up, all below the oldest running
	// transaction (so every row is visible to the relay); the cursor stands
	// on the last sent row, ten before the end.
	var xmin int64
	if err := f.pool.QueryRow(f.ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&xmin); err != nil {
		t.Fatal(err)
	}
	txs := min(1000, xmin-4)
	if txs < 2 {
		t.Fatalf("server transaction horizon %d too young for the test", xmin)
	}
	if _, err := f.pool.Exec(f.ctx, `INSERT INTO watermill_outbox (uuid, payload, metadata, transaction_id)
		SELECT gen_random_uuid()::text, '{"seq": 1}', '{}', (3 + (i - 1) * $2 / $1)::text::xid8 FROM generate_series(1, $1::bigint) i`,
		sent+pending, txs); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(f.ctx, `UPDATE watermill_offsets_outbox c SET last_processed_transaction_id = o.transaction_id, offset_acked = o."offset"
		FROM (SELECT transaction_id, "offset" FROM watermill_outbox ORDER BY transaction_id, "offset" OFFSET $1 - 1 LIMIT 1) o
		WHERE c.consumer_group = $2`, sent, outbox.RelayGroup); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(f.ctx, `ANALYZE watermill_outbox`); err != nil {
		t.Fatal(err)
	}
	var pages int
	if err := f.pool.QueryRow(f.ctx, `SELECT pg_relation_size('watermill_outbox') / current_setting('block_size')::int`).Scan(&pages); err != nil {
		t.Fatal(err)
	}

	for _, q := range []struct {
		name string
		sql  string
		args []any
		rows int // rows the plan's top node returns
	}{
		{"relay batch", outbox.RelayBatchQuery, []any{outbox.RelayGroup, 500}, pending},
		{"relay batch below the database's oldest transaction", outbox.RelayBatchQueryInDatabase, []any{outbox.RelayGroup, 500}, pending},
		{"backlog count", outbox.StatsQuery, []any{outbox.RelayGroup}, 1},
		{"relay's count of waiting events", outbox.WaitingQuery, []any{outbox.RelayGroup, outbox.WaitingProbe}, 1},
	} {
		raw := f.explainAnalyze(q.sql, q.args...)
		var plans []struct {
			Plan struct {
				ActualRows int `json:"Actual Rows"`
				Hit        int `json:"Shared Hit Blocks"`
				Read       int `json:"Shared Read Blocks"`
			}
		}
		if err := json.Unmarshal(raw, &plans); err != nil || len(plans) != 1 {
			t.Fatalf("%s: plan %s: %v", q.name, raw, err)
		}
		p := plans[0].Plan
		if p.ActualRows != q.rows {
			t.Errorf("%s returned %d rows, want %d", q.name, p.ActualRows, q.rows)
		}
		// A few index and heap pages for the ten rows after the cursor; the
		// sent history alone fills the table's pages many times over that.
		if touched := p.Hit + p.Read; touched > 30 {
			t.Errorf("%s touched %d buffers to read %d rows behind %d sent ones (table: %d pages); plan:\n%s",
				q.name, touched, pending, sent, pages, raw)
		}
	}
	st, err := outbox.ReadStats(f.ctx, f.pool)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != pending {
		t.Errorf("backlog %d, want %d", st.Pending, pending)
	}
}

// explainAnalyze runs sql under EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
// on the fixture's pool and returns the plan.
func (f *fixture) explainAnalyze(sql string, args ...any) []byte {
	f.t.Helper()
	var plan []byte
	if err := f.pool.QueryRow(f.ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+sql, args...).Scan(&plan); err != nil {
		f.t.Fatalf("explain %.60q: %v", sql, err)
	}
	return plan
}

// BenchmarkRelayReadBehindHistory times the relay's batch read (the ten rows
// after its cursor) with 0, 10,000 and 100,000 sent rows kept behind the
// cursor, side by side with the same read written as "same transaction and
// later offset, or later transaction" (the form watermill-sql's subscriber
// uses), which the index cannot bound. Run it with
//
//	go test ./outbox -run '^$' -bench RelayReadBehindHistory
//
// Each reports both reads in ms and their ratio, measured alternately in
// one loop.
func BenchmarkRelayReadBehindHistory(b *testing.B) {
	ctx, pool := benchDatabase(b)
	// The filter form: the same rows, the cursor as an OR of two conditions.
	orForm := strings.Replace(outbox.RelayBatchQuery,
		`(transaction_id, "offset") > ((SELECT last_processed_transaction_id FROM cursor), (SELECT offset_acked FROM cursor))`,
		`((transaction_id = (SELECT last_processed_transaction_id FROM cursor) AND "offset" > (SELECT offset_acked FROM cursor))
		  OR transaction_id > (SELECT last_processed_transaction_id FROM cursor))`, 1)
	if orForm == outbox.RelayBatchQuery {
		b.Fatal("the relay's cursor condition changed; update the benchmark's filter form")
	}
	const pending = 10
	sent := 0
	for _, history := range []int{0, 10_000, 100_000} {
		// Grow the history to this size: rows of one long-committed
		// transaction (xid 3), the cursor before the last ten.
		if _, err := pool.Exec(ctx, `INSERT INTO watermill_outbox (uuid, payload, metadata, transaction_id)
			SELECT gen_random_uuid()::text, '{"seq": 1}', '{}', '3' FROM generate_series(1, $1)`, history-sent+pending); err != nil {
			b.Fatal(err)
		}
		sent = history + pending
		if _, err := pool.Exec(ctx, `UPDATE watermill_offsets_outbox SET last_processed_transaction_id = '3',
			offset_acked = (SELECT max("offset") FROM watermill_outbox) - $1 WHERE consumer_group = $2`, pending, outbox.RelayGroup); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE watermill_outbox`); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("sent=%d", history), func(b *testing.B) {
			var row, or time.Duration
			read := func(q string) time.Duration {
				start := time.Now()
				rows, err := pool.Query(ctx, q, outbox.RelayGroup, 500)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for rows.Next() {
					n++
				}
				if err := rows.Err(); err != nil || n != pending {
					b.Fatalf("read %d rows (%v), want %d", n, err, pending)
				}
				return time.Since(start)
			}
			for b.Loop() {
				row += read(outbox.RelayBatchQuery)
				or += read(orForm)
			}
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(b.N) }
			b.ReportMetric(ms(row), "relay-ms/read")
			b.ReportMetric(ms(or), "or-form-ms/read")
			b.ReportMetric(float64(or)/float64(row), "or/relay")
		})
	}
}

// benchDatabase is a fresh migrated database for a benchmark, with a
// context that ends with it (at most five minutes).
func benchDatabase(b *testing.B) (context.Context, *pgxpool.Pool) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	pool, err := pgxpool.New(ctx, testenv.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if err := outbox.Migrate(ctx, pool, nil); err != nil {
		b.Fatal(err)
	}
	return ctx, pool
}
