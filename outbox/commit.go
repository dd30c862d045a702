package outbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SendAtCommit sends b's statements in tx. In a transaction that holds
// writes for its commit (a consumer's Handler's, or WithTx's on a pool)
// they are held and travel with the next statement the transaction sends:
// at the latest in one round trip with its COMMIT, or in front of its next
// statement or batch (a read sees them). So a transaction's last writes
// cost no round trip of their own, and nothing runs in a different order
// than if b had been sent at once. A batch with callbacks (QueuedQuery.Exec,
// Query, QueryRow) is sent at once: a check that fails after the COMMIT
// went out could not stop it. A held statement's failure fails the
// transaction as the handler's error would. For any other tx (a
// savepoint's, say), it sends b at once.
func SendAtCommit(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error {
	h, ok := tx.(*handlerTx)
	if !ok || hasCallbacks(b) {
		return tx.SendBatch(ctx, b).Close()
	}
	h.st.hold(b)
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

// handlerTx is the transaction a consumer's handlers and WithTx's function
// are given: pgx's, except that statements held for the commit
// (SendAtCommit) go out in front of the next statement or batch, in its
// round trip, so holding them never changes what a statement sees; and
// that the transaction begins with its first round trip instead of one of
// its own (a consumer's, with its inbox claim: see Consumer.begin).
// What goes around it (Conn, LargeObjects, a savepoint's own statements)
// does not send them first: hold nothing on tx while a savepoint of it is
// open.
type handlerTx struct {
	c  *connTx
	st *deferredState
}

// send sends what is held and b's statements in one round trip, beginning
// the transaction in it if it has not begun. Reading a result by hand
// reads past the BEGIN's, the guard's and the held statements' first.
func (t *handlerTx) send(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	skip := 0 // the BEGIN and a guard are connTx's to read
	if held := t.st.takeHeld(); held != nil {
		skip += held.Len()
		b = &pgx.Batch{QueuedQueries: append(held.QueuedQueries, b.QueuedQueries...)}
	}
	br := t.c.send(ctx, b)
	if skip == 0 {
		return br
	}
	return &behindResults{BatchResults: br, skip: skip}
}

// ready reports whether a statement can go straight to pgx's transaction:
// it has begun and nothing is held.
func (t *handlerTx) ready() bool { return t.c.tx != nil && t.st.held == nil }

// begun sends what is held, beginning the transaction first if need be,
// and returns pgx's transaction: for what cannot ride in a batch.
func (t *handlerTx) begun(ctx context.Context) (pgx.Tx, error) {
	if t.ready() {
		return t.c.tx, nil
	}
	if err := t.send(ctx, &pgx.Batch{}).Close(); err != nil {
		return nil, err
	}
	return t.c.tx, nil
}

// Exec sends sql in one round trip with what is held (and the BEGIN). A
// statement without arguments goes on its own after them, as pgx sends it
// with the simple protocol, which allows several statements in one string.
func (t *handlerTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.ready() || len(args) == 0 || hasOptions(args) {
		tx, err := t.begun(ctx)
		if err != nil {
			return pgconn.CommandTag{}, err
		}
		return tx.Exec(ctx, sql, args...)
	}
	br := t.send(ctx, &pgx.Batch{QueuedQueries: []*pgx.QueuedQuery{{SQL: sql, Arguments: args}}})
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

// Query sends sql in one round trip with what is held (and the BEGIN).
func (t *handlerTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if t.ready() || hasOptions(args) {
		tx, err := t.begun(ctx)
		if err != nil {
			return nil, err
		}
		return tx.Query(ctx, sql, args...)
	}
	br := t.send(ctx, &pgx.Batch{QueuedQueries: []*pgx.QueuedQuery{{SQL: sql, Arguments: args}}})
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return rows, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (t *handlerTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if t.ready() {
		return t.c.tx.QueryRow(ctx, sql, args...)
	}
	rows, err := t.Query(ctx, sql, args...)
	return batchRow{rows: rows, err: err}
}

// SendBatch sends what is held in front of b's statements, in b's round trip.
func (t *handlerTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return t.send(ctx, b)
}

func (t *handlerTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	tx, err := t.begun(ctx)
	if err != nil {
		return 0, err
	}
	return tx.CopyFrom(ctx, table, columns, src)
}

func (t *handlerTx) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := t.begun(ctx)
	if err != nil {
		return nil, err
	}
	return tx.Begin(ctx)
}

func (t *handlerTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	tx, err := t.begun(ctx)
	if err != nil {
		return nil, err
	}
	return tx.Prepare(ctx, name, sql)
}

func (t *handlerTx) LargeObjects() pgx.LargeObjects {
	tx, err := t.begun(context.Background())
	if err != nil {
		panic(fmt.Sprintf("outbox: begin for large objects: %v", err))
	}
	return tx.LargeObjects()
}

// Conn is the transaction's connection. What is sent on it directly goes
// outside the transaction until the transaction's first statement has
// begun it, and ahead of what is held.
func (t *handlerTx) Conn() *pgx.Conn { return t.c.conn.Conn() }

// Commit and Rollback belong to the transaction's owner (the consumer,
// WithTx), which ends it when the function it was given returns.
func (t *handlerTx) Commit(context.Context) error { return errOwnerEnds }

func (t *handlerTx) Rollback(context.Context) error { return errOwnerEnds }

var errOwnerEnds = errors.New("outbox: the transaction is ended by its owner (the consumer or WithTx), not by the function it runs")

// hasOptions reports whether args start with one of pgx's query options,
// which a batch does not take.
func hasOptions(args []any) bool {
	if len(args) == 0 {
		return false
	}
	switch args[0].(type) {
	case pgx.QueryExecMode, pgx.QueryResultFormats, pgx.QueryResultFormatsByOID:
		return true
	}
	return false
}

// batchRows are a query's rows read from the batch it was sent in;
// closing them finishes the batch, and so does reading past the last row,
// which closes pgx's rows.
type batchRows struct {
	pgx.Rows
	br       pgx.BatchResults
	closeErr error
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if err := r.br.Close(); err != nil && r.Rows.Err() == nil {
		r.closeErr = err
	}
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.closeErr
}

// batchRow is QueryRow's row from batchRows, scanned as pgx scans its own.
type batchRow struct {
	rows pgx.Rows
	err  error
}

func (r batchRow) Scan(dest ...any) error {
	if r.err != nil {
		if r.rows != nil {
			r.rows.Close()
		}
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// behindResults are the results of a batch whose leading statements (the
// BEGIN, a guard, held ones) are not the caller's: reading a result by
// hand, or closing, first reads the skip results of theirs. When they are
// a transaction's BEGIN and guard, guarded is that transaction, which is
// marked guarded once they succeeded.
type behindResults struct {
	pgx.BatchResults
	skip    int
	guarded *connTx
	read    bool
	err     error
}

func (r *behindResults) first() error {
	if r.read {
		return r.err
	}
	r.read = true
	for range r.skip {
		if _, r.err = r.BatchResults.Exec(); r.err != nil {
			return r.err
		}
	}
	if r.guarded != nil {
		r.guarded.guarded = true
	}
	return nil
}

func (r *behindResults) Exec() (pgconn.CommandTag, error) {
	if err := r.first(); err != nil {
		return pgconn.CommandTag{}, err
	}
	return r.BatchResults.Exec()
}

func (r *behindResults) Query() (pgx.Rows, error) {
	if err := r.first(); err != nil {
		return nil, err
	}
	return r.BatchResults.Query()
}

func (r *behindResults) QueryRow() pgx.Row {
	if err := r.first(); err != nil {
		return errRow{err}
	}
	return r.BatchResults.QueryRow()
}

func (r *behindResults) Close() error {
	err := r.first()
	if cerr := r.BatchResults.Close(); err == nil {
		err = cerr
	}
	return err
}

// errRow is a Row whose query could not be sent.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// connTx is a transaction on a connection it holds itself, so that its
// last writes and its COMMIT can share one round trip (a pgxpool
// transaction gives its connection back only by sending a COMMIT or a
// ROLLBACK of its own), and so that its BEGIN can ride with its first
// statements: tx is nil until a round trip has begun it.
type connTx struct {
	conn *pgxpool.Conn
	tx   pgx.Tx

	// guard, when set, goes with the BEGIN in the transaction's first
	// round trip, in front of everything else: a consumer's inbox claim,
	// which fails on a message the inbox already holds, and so fails
	// everything sent after it in that round trip and the transaction with
	// it. guarded reports that it was sent and succeeded.
	guard   *pgx.Batch
	guarded bool
}

// acquire takes a connection for a transaction that begins with its first
// round trip.
func acquire(ctx context.Context, pool *pgxpool.Pool) (*connTx, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &connTx{conn: conn}, nil
}

// beginTx acquires a connection and begins a transaction on it with b's
// statements, in one round trip.
func beginTx(ctx context.Context, pool *pgxpool.Pool, b *pgx.Batch) (*connTx, error) {
	t, err := acquire(ctx, pool)
	if err != nil {
		return nil, err
	}
	if err := t.send(ctx, b).Close(); err != nil {
		t.close(ctx)
		return nil, err
	}
	return t, nil
}

// send sends b in the transaction, beginning it in b's round trip if it
// has not begun: the BEGIN and the guard, if any, go first, and their
// results are read before any the caller reads.
func (t *connTx) send(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if t.tx != nil {
		return t.tx.SendBatch(ctx, b)
	}
	out := &pgx.Batch{}
	out.BeginTx(pgx.TxOptions{})
	guard := 0
	if t.guard != nil {
		guard = t.guard.Len()
		out.QueuedQueries = append(out.QueuedQueries, t.guard.QueuedQueries...)
		t.guard = nil
	}
	out.QueuedQueries = append(out.QueuedQueries, b.QueuedQueries...)
	br := t.conn.SendBatch(ctx, out)
	t.tx = br.Tx()
	lead := &behindResults{BatchResults: br, skip: 1 + guard}
	if guard > 0 {
		lead.guarded = t
	}
	return lead
}

// pending reports whether the transaction has something to send even if
// its owner adds nothing: a guard not yet sent.
func (t *connTx) pending() bool { return t.tx == nil && t.guard != nil }

// errCommitRolledBack is a COMMIT the server answered with ROLLBACK.
var errCommitRolledBack = errors.New("commit rolled back")

// commit sends tail's statements, if any, and the COMMIT in one batch (with
// the BEGIN, when nothing has begun the transaction yet; a transaction
// that sent and holds nothing costs no round trip), and gives the
// connection back once the transaction has ended.
func (t *connTx) commit(ctx context.Context, tail *pgx.Batch) error {
	if t.tx == nil && !t.pending() && (tail == nil || tail.Len() == 0) {
		t.close(ctx)
		return nil
	}
	b := tail // the owner's, taken for the commit
	if b == nil {
		b = &pgx.Batch{}
	}
	b.Queue("COMMIT").Exec(func(tag pgconn.CommandTag) error {
		if tag.String() != "COMMIT" {
			return errCommitRolledBack
		}
		return nil
	})
	err := t.send(ctx, b).Close()
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
func (t *connTx) close(ctx context.Context) {
	if t.conn == nil {
		return
	}
	pc := t.conn.Conn()
	if t.tx != nil && !pc.IsClosed() && pc.PgConn().TxStatus() != 'I' {
		_ = t.tx.Rollback(context.WithoutCancel(ctx))
	}
	t.conn.Release()
	t.conn = nil
}
