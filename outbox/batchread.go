package outbox

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// batchReads is what a consumer transaction has read of one kind of row,
// by key: nil for a key without a row. It writes nothing, so it flushes
// nothing.
type batchReads[V any] struct {
	byKey     map[string]*V
	batchRead bool
}

func newBatchReads[V any]() *batchReads[V] { return &batchReads[V]{byKey: map[string]*V{}} }

func (*batchReads[V]) Flush(context.Context, pgx.Tx) error { return nil }

// ReadBatched returns the row of key, and whether there is one, reading
// for the whole batch of the consumer transaction ctx belongs to: its
// first lookup of the kind of row name names (a Defer key) loads key and
// every key the batch's payloads name (batchKey, see BatchKeys) in one
// call of load, and later lookups are answered from what was loaded, as
// the transaction has changed it since (RememberBatched, ForgetBatched). A
// key loaded neither with the batch nor since is loaded alone. Outside a
// consumer's Handler every lookup loads key alone.
//
// load returns the rows it found, by key; keys it does not return have no
// row. A row that locks (FOR UPDATE) is locked for every message of the
// batch at the first lookup, so load should lock in key order.
func ReadBatched[V, P any](ctx context.Context, name any, key string, batchKey func(P) (string, bool),
	load func(keys []string) (map[string]V, error)) (v V, found bool, err error) {
	reads, inBatch := Defer(ctx, name, newBatchReads[V])
	if !inBatch {
		reads = newBatchReads[V]()
	}
	if _, known := reads.byKey[key]; !known {
		keys := []string{key}
		if inBatch && !reads.batchRead {
			reads.batchRead = true
			keys = BatchKeys(ctx, key, batchKey)
		}
		rows, err := load(keys)
		if err != nil {
			return v, false, err
		}
		for _, k := range keys {
			reads.byKey[k] = nil
		}
		for k, row := range rows {
			reads.byKey[k] = &row
		}
	}
	if row := reads.byKey[key]; row != nil {
		return *row, true, nil
	}
	return v, false, nil
}

// RememberBatched notes v as the row of key the consumer transaction ctx
// belongs to has written, for its later ReadBatched lookups of name: as a
// read would return it. Outside a consumer's Handler it does nothing.
func RememberBatched[V any](ctx context.Context, name any, key string, v V) {
	if reads, ok := Defer(ctx, name, newBatchReads[V]); ok {
		reads.byKey[key] = &v
	}
}

// ForgetBatched makes the consumer transaction's next ReadBatched lookup
// of key read it again.
func ForgetBatched[V any](ctx context.Context, name any, key string) {
	if reads, ok := Defer(ctx, name, newBatchReads[V]); ok {
		delete(reads.byKey, key)
	}
}
