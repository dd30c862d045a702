package outbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SendAtCommit sends b's statements in tx. Inside a consumer transaction
// (ctx being a Handler's, tx the transaction it was given) they are held
// and travel with the next statement the transaction sends: at the latest
// in one round trip with its COMMIT, or in front of the handler's next
// batch, and before any other statement (a read sees them). So a handler's
// last writes cost no round trip of their own, and nothing runs in a
// different order than if b had been sent at once. A batch with callbacks
// (QueuedQuery.Exec, Query, QueryRow) is sent at once: a check that fails
// after the COMMIT went out could not stop it. A held statement's failure
// fails the transaction as the handler's error would. Elsewhere, and for
// any other tx (a savepoint's, say), it sends b at once.
func SendAtCommit(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error {
	st, _ := ctx.Value(deferredKey).(*deferredState)
	if st == nil || st.tx == nil || tx != pgx.Tx(st.tx) || hasCallbacks(b) {
		return tx.SendBatch(ctx, b).Close()
	}
	st.hold(b)
	return nil
}

// hasCallbacks reports whether a statement of b has a result callback.
func hasCallbacks(b *pgx.Batch) bool {
	for _, q := range b.QueuedQueries {
		if q.Fn != nil {
			return true
		}
	}
	return false
}

// A BatchDeferred is a Deferred whose writes travel with the transaction's
// COMMIT: the consumer calls QueueFlush instead of Flush and sends what it
// queued, after the last handler's held writes, in the commit's round
// trip. Outside a consumer transaction (Accumulate) Flush still writes.
type BatchDeferred interface {
	Deferred
	// QueueFlush queues what Flush would write, with no result callbacks.
	// A failing statement fails the commit, and a batch is then applied
	// one message at a time, as when a Flush fails.
	QueueFlush(b *pgx.Batch) error
}

// hold adds b's statements to what the transaction sends with its commit.
func (st *deferredState) hold(b *pgx.Batch) {
	if b.Len() == 0 {
		return
	}
	if st.held == nil {
		st.held = &pgx.Batch{}
		st.heldFrom = st.handler
	}
	st.held.QueuedQueries = append(st.held.QueuedQueries, b.QueuedQueries...)
}

// takeHeld returns what is held and holds nothing more, noting when it
// was held by an earlier handler than the one running.
func (st *deferredState) takeHeld() *pgx.Batch {
	b := st.held
	st.held = nil
	if b != nil && st.heldFrom < st.handler {
		st.sentOthers = true
	}
	return b
}

// sendHeld sends what is held, in tx (pgx's), now.
func (st *deferredState) sendHeld(ctx context.Context, tx pgx.Tx) error {
	if b := st.takeHeld(); b != nil {
		return tx.SendBatch(ctx, b).Close()
	}
	return nil
}

// handlerTx is the transaction a consumer's handlers are given: pgx's,
// except that statements held for the commit (SendAtCommit) go out before
// any other statement, in front of a batch or on their own before a
// query, so holding them never changes what a statement sees. What goes
// around it (Conn, LargeObjects, a savepoint's own statements) does not
// send them first: hold nothing on tx while a savepoint of it is open.
type handlerTx struct {
	pgx.Tx
	st *deferredState
}

func (t *handlerTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.st.sendHeld(ctx, t.Tx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return t.Tx.Exec(ctx, sql, args...)
}

func (t *handlerTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.st.sendHeld(ctx, t.Tx); err != nil {
		return nil, err
	}
	return t.Tx.Query(ctx, sql, args...)
}

func (t *handlerTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.st.sendHeld(ctx, t.Tx); err != nil {
		return errRow{err}
	}
	return t.Tx.QueryRow(ctx, sql, args...)
}

// SendBatch sends what is held in front of b's statements, in b's round trip.
func (t *handlerTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	held := t.st.takeHeld()
	if held == nil {
		return t.Tx.SendBatch(ctx, b)
	}
	return &skipResults{BatchResults: t.Tx.SendBatch(ctx, &pgx.Batch{QueuedQueries: append(held.QueuedQueries, b.QueuedQueries...)}), skip: held.Len()}
}

func (t *handlerTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.st.sendHeld(ctx, t.Tx); err != nil {
		return 0, err
	}
	return t.Tx.CopyFrom(ctx, table, columns, src)
}

func (t *handlerTx) Begin(ctx context.Context) (pgx.Tx, error) {
	if err := t.st.sendHeld(ctx, t.Tx); err != nil {
		return nil, err
	}
	return t.Tx.Begin(ctx)
}

// errRow is a Row whose query could not be sent.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// skipResults are the results of a batch sent behind skip held
// statements: reading a result by hand first reads past theirs.
type skipResults struct {
	pgx.BatchResults
	skip int
	err  error
}

func (r *skipResults) skipHeld() error {
	for ; r.skip > 0 && r.err == nil; r.skip-- {
		_, r.err = r.BatchResults.Exec()
	}
	return r.err
}

func (r *skipResults) Exec() (pgconn.CommandTag, error) {
	if err := r.skipHeld(); err != nil {
		return pgconn.CommandTag{}, err
	}
	return r.BatchResults.Exec()
}

func (r *skipResults) Query() (pgx.Rows, error) {
	if err := r.skipHeld(); err != nil {
		return nil, err
	}
	return r.BatchResults.Query()
}

func (r *skipResults) QueryRow() pgx.Row {
	if err := r.skipHeld(); err != nil {
		return errRow{err}
	}
	return r.BatchResults.QueryRow()
}

// consumerTx is a consumer transaction on a connection it holds itself, so
// that its last writes and its COMMIT can share one round trip: a pgxpool
// transaction gives its connection back only by sending a COMMIT or a
// ROLLBACK of its own.
type consumerTx struct {
	conn *pgxpool.Conn
	tx   pgx.Tx
}

// beginTx acquires a connection and sends b, which begins a transaction
// (pgx's Batch.BeginTx), on it.
func beginTx(ctx context.Context, pool *pgxpool.Pool, b *pgx.Batch) (*consumerTx, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	br := conn.SendBatch(ctx, b)
	t := &consumerTx{conn: conn, tx: br.Tx()}
	if err := br.Close(); err != nil {
		t.close(ctx)
		return nil, err
	}
	return t, nil
}

// errCommitRolledBack is a COMMIT the server answered with ROLLBACK.
var errCommitRolledBack = errors.New("commit rolled back")

// commit sends tail's statements, if any, and the COMMIT in one batch, and
// gives the connection back once the transaction has ended.
func (t *consumerTx) commit(ctx context.Context, tail *pgx.Batch) error {
	b := tail
	if b == nil {
		b = &pgx.Batch{}
	}
	b.Queue("COMMIT").Exec(func(tag pgconn.CommandTag) error {
		if tag.String() != "COMMIT" {
			return errCommitRolledBack
		}
		return nil
	})
	err := t.tx.SendBatch(ctx, b).Close()
	t.close(ctx)
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// close gives the connection back to the pool, first rolling back a
// transaction still open on it (after a failure, or one never committed);
// the pool discards a connection that cannot be reused. It is a no-op the
// second time.
func (t *consumerTx) close(ctx context.Context) {
	if t.conn == nil {
		return
	}
	pc := t.conn.Conn()
	if !pc.IsClosed() && pc.PgConn().TxStatus() != 'I' {
		_ = t.tx.Rollback(context.WithoutCancel(ctx))
	}
	t.conn.Release()
	t.conn = nil
}
