package outbox

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Deferred is work that the handlers of one consumer transaction share and
// that is written once, at the end of that transaction: counters a batch of
// events adds up, the latest of several snapshots of one row. Under load a
// consumer applies up to MaxBatch messages per transaction, so a Deferred
// turns one write per message into one write per batch.
type Deferred interface {
	// Flush writes what the handlers added. It runs inside the transaction,
	// after its last handler and before the commit; an error fails the
	// transaction as a handler's error would.
	Flush(ctx context.Context, tx pgx.Tx) error
}

// Defer returns the Deferred that key names in the consumer transaction ctx
// belongs to (ctx being a Handler's), calling create the first time in that
// transaction. The consumer flushes every Deferred of the transaction, in
// the order they were created, before it commits; a transaction that rolls
// back discards them with everything else. A batch whose flush fails is
// applied again one message per transaction, each with its own Deferred, so
// a message's outcome never depends on the messages batched with it.
//
// ok is false when ctx does not come from a consumer's Handler: there is no
// transaction end to defer to, and the caller should write at once.
//
// The state rides in ctx, as the correlation id does, rather than in the
// Handler's signature: the transaction itself is still passed explicitly, and
// handlers that do not defer anything are unchanged.
func Defer[D Deferred](ctx context.Context, key any, create func() D) (d D, ok bool) {
	st, _ := ctx.Value(deferredKey).(*deferredState)
	if st == nil {
		return d, false
	}
	if st.byKey == nil { // most transactions defer nothing: allocate on first use
		st.byKey = map[any]Deferred{}
	}
	if got, found := st.byKey[key]; found {
		d, ok := got.(D)
		if !ok {
			panic(fmt.Sprintf("outbox.Defer: key %v holds a %T, not a %T", key, got, d))
		}
		return d, true
	}
	d = create()
	st.byKey[key] = d
	st.order = append(st.order, d)
	return d, true
}

// Accumulate is Defer for callers that work both inside and outside a
// consumer's transaction: add puts what it has into the Deferred that key
// names, which the consumer flushes before its commit; outside a consumer
// transaction add fills a new one that is flushed in tx at once.
func Accumulate[D Deferred](ctx context.Context, tx pgx.Tx, key any, create func() D, add func(D)) error {
	d, deferred := Defer(ctx, key, create)
	if !deferred {
		d = create()
	}
	add(d)
	if deferred {
		return nil
	}
	return d.Flush(ctx, tx)
}

// AfterCommit runs fn once the consumer transaction ctx belongs to (ctx
// being a Handler's) has committed: to tell the process about a change
// only once others can read it, such as waking requests that wait for it.
// A transaction that rolls back drops fn with everything else, and so does
// a batch applied again message by message (each message's handler
// registers again). fn runs on the consumer's goroutine, so it must be
// quick and must not block.
//
// ok is false when ctx does not come from a consumer's Handler: the caller
// runs fn itself after its own commit.
func AfterCommit(ctx context.Context, fn func()) (ok bool) {
	st, _ := ctx.Value(deferredKey).(*deferredState)
	if st == nil {
		return false
	}
	st.after = append(st.after, fn)
	return true
}

// Batch returns the messages whose handlers run in the consumer transaction
// ctx belongs to (ctx being a Handler's), in the order they run, the
// running handler's among them; nil outside a consumer's Handler. A store
// can read for all of them in one round trip where each handler would
// read for its own (keeping what it read for the transaction with Defer);
// whatever a handler writes in between is its to account for.
func Batch(ctx context.Context) []Message {
	st, _ := ctx.Value(deferredKey).(*deferredState)
	if st == nil {
		return nil
	}
	return st.batch
}

// BatchKeys returns first, then each key the other messages of the
// consumer transaction ctx belongs to name, each once: what a store reads
// for the whole batch in one round trip. key reads a message's payload,
// decoded as P, and reports whether it names one (a payload that does not
// decode names none). Outside a consumer's Handler it returns only first.
func BatchKeys[P any](ctx context.Context, first string, key func(P) (string, bool)) []string {
	keys := []string{first}
	seen := map[string]bool{first: true}
	for _, m := range Batch(ctx) {
		var p P
		if json.Unmarshal(m.Payload, &p) != nil {
			continue
		}
		if k, ok := key(p); ok && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
}

// deferredState is one consumer transaction's Deferreds and what runs
// after its commit.
type deferredState struct {
	byKey map[any]Deferred
	order []Deferred
	after []func()
	batch []Message // the messages whose handlers run in the transaction
	// tx is the transaction the handlers are given; held is what they
	// hold for the commit (SendAtCommit), since the handler heldFrom ran.
	// handler is the message whose handler runs; sentOthers reports that
	// statements an earlier handler held were sent while it ran.
	tx         *handlerTx
	held       *pgx.Batch
	heldFrom   int
	handler    int
	sentOthers bool
}

// withDeferred gives ctx a fresh transaction scope for Defer in tx, and
// returns the transaction handlers are given.
func withDeferred(ctx context.Context, tx *connTx) (context.Context, *deferredState) {
	st := newDeferredState(tx)
	return context.WithValue(ctx, deferredKey, st), st
}

// newDeferredState is the state of a transaction on tx that holds writes
// for its commit, with the transaction its functions are given.
func newDeferredState(tx *connTx) *deferredState {
	st := &deferredState{}
	st.tx = &handlerTx{c: tx, st: st}
	return st
}

// committed runs what AfterCommit registered, in order.
func (st *deferredState) committed() {
	for _, fn := range st.after {
		fn()
	}
}

// flush writes the transaction's Deferreds in creation order, in tx (the
// handlers' transaction, which sends what is held before anything else):
// a BatchDeferred's statements are held for the commit.
func (st *deferredState) flush(ctx context.Context, tx pgx.Tx) error {
	for _, d := range st.order {
		if q, ok := d.(BatchDeferred); ok {
			b := &pgx.Batch{}
			if err := q.QueueFlush(b); err != nil {
				return err
			}
			if err := SendAtCommit(ctx, tx, b); err != nil {
				return err
			}
			continue
		}
		if err := d.Flush(ctx, tx); err != nil {
			return err
		}
	}
	return nil
}
