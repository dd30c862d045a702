package outbox_test

import (
	"encoding/json"
	"testing"

	"github.com/shopmesh/shopmesh/outbox"
)

// Sent rows stay in the outbox for the retention window (a week by default),
// so the relay's batch read and the backlog count must cost the same however
// much sent history lies behind the cursor: each is one index range that
// starts at the cursor, never a walk over everything sent before it.
func TestOutboxReadsSkipSentHistory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const sent, pending = 20000, 10
	// Rows of one long-committed transaction (xid 3, below every snapshot's
	// xmin); the cursor stands before the last ten.
	if _, err := f.pool.Exec(f.ctx, `INSERT INTO watermill_outbox (uuid, payload, metadata, transaction_id)
		SELECT gen_random_uuid()::text, '{"seq": 1}', '{}', '3' FROM generate_series(1, $1)`, sent+pending); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(f.ctx, `UPDATE watermill_offsets_outbox SET last_processed_transaction_id = '3', offset_acked = $1
		WHERE consumer_group = $2`, sent, outbox.RelayGroup); err != nil {
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
		{"backlog count", outbox.StatsQuery, []any{outbox.RelayGroup}, 1},
	} {
		var raw []byte
		if err := f.pool.QueryRow(f.ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+q.sql, q.args...).Scan(&raw); err != nil {
			t.Fatalf("%s: explain: %v", q.name, err)
		}
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
