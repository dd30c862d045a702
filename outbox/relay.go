package outbox

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/internal/wait"
)

// relayGroup is the relay's row in watermill_offsets_outbox.
const relayGroup = "shopmesh-relay"

// ErrUnroutable is returned for an event the broker could not route to any
// queue (mandatory publishing): it is kept in the outbox, never dropped.
var ErrUnroutable = errors.New("unroutable: no queue is bound for this event type")

// RelayConfig configures a Relay.
type RelayConfig struct {
	// Outbox is the service's outbox; the relay wakes when it is notified.
	Outbox *Outbox
	// Pool is the service's database.
	Pool *pgxpool.Pool
	// AMQPURL is the broker, with the service's own credentials and vhost.
	AMQPURL string
	// BatchSize is the most rows published per transaction. Default 500.
	BatchSize int
	// PollInterval is the safety-net poll when no wake-up arrives. Default 500ms.
	PollInterval time.Duration
	// HeldBackRetry is how soon the relay reads again after a read that
	// found committed events held back behind an older transaction still
	// running (whose commit wakes no relay); it doubles with each such read
	// in a row, up to PollInterval. The second read in a row held back by
	// the cluster's oldest transaction is followed at once by one that
	// looks past other databases' transactions (see databaseBound), as are
	// the early reads after it while events stay held back. Default 2ms,
	// about what a service's transaction takes. Negative: no early read,
	// the events wait for the next wake-up or poll.
	HeldBackRetry time.Duration
	// SchedulerIdlePoll is the longest the scheduler (see Schedule) sleeps:
	// while nothing is scheduled and this process has scheduled nothing
	// lately, it looks this often. Default 5s.
	SchedulerIdlePoll time.Duration
	// ConfirmTimeout bounds the wait for publisher confirms. Default 10s.
	ConfirmTimeout time.Duration
	// ListenNotify makes the relay LISTEN on the outbox's channel so that
	// writers in other processes can wake it with pg_notify. Default on;
	// writers in this process use Outbox.Notify, which costs nothing, while
	// pg_notify in every write transaction serialises commits.
	DisableListen bool
	// Metrics may be nil.
	Metrics *Metrics
	Logger  *slog.Logger
}

func (c *RelayConfig) setDefaults() {
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	if c.PollInterval == 0 {
		c.PollInterval = 500 * time.Millisecond
	}
	if c.HeldBackRetry == 0 {
		c.HeldBackRetry = 2 * time.Millisecond
	}
	if c.SchedulerIdlePoll == 0 {
		c.SchedulerIdlePoll = 5 * time.Second
	}
	if c.ConfirmTimeout == 0 {
		c.ConfirmTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a configuration that cannot work.
func (c RelayConfig) Validate() error {
	switch {
	case c.Outbox == nil:
		return errors.New("relay: outbox is required")
	case c.Pool == nil:
		return errors.New("relay: pool is required")
	case c.AMQPURL == "":
		return errors.New("relay: AMQP URL is required")
	case c.BatchSize < 0 || c.BatchSize > 10000:
		return fmt.Errorf("relay: batch size %d out of range 1..10000", c.BatchSize)
	}
	return nil
}

// Relay forwards committed outbox rows to the service's exchange in commit
// order. Only one relay of a database works at a time: the leader holds a
// session-level advisory lock on a connection of its own and does all its
// database work on it, so it leads exactly as long as that connection lives;
// others stand by and try the lock at every poll, so running several is safe
// and one takes over when the leader goes. A row is marked sent (the cursor
// advances past it) only after the broker confirmed it; a crash in between
// publishes it again, and consumers' inboxes absorb the duplicate. The
// cursor write of a confirmed batch goes with the next batch's read, and
// the relay reads again at once after every batch it sent, so while events
// keep coming each batch costs one round trip, and the read that finds
// nothing has written the last move before the relay waits.
type Relay struct {
	cfg    RelayConfig
	notify chan struct{}

	// db is the relay's own connection, nil while there is none; leading
	// reports whether it holds the relay lock.
	db      *pgx.Conn
	leading bool

	// cc is the confirm-mode channel; nil while disconnected.
	conn *amqp.Connection
	cc   *confirmChannel

	// probe is set after an unroutable event: batches shrink to that one
	// event until it routes, so the events behind it are not published
	// again and again while it waits.
	probe bool

	// afterConfirm, when set (tests only), runs after the broker confirmed a
	// batch and before the cursor is written; an error abandons the batch
	// exactly as a crash at that point would.
	afterConfirm func(batch int) error

	// moved is the cursor move of the last confirmed batch, not yet
	// written: it travels with the next batch's read, in one round trip.
	moved *cursorMove

	// inDatabase makes the next read take rows below databaseBound
	// rather than clusterBound: set after two reads in a row left events
	// held back. databaseBoundDenied is set once the server refused such a
	// read (see read): from then on every read takes clusterBound.
	inDatabase, databaseBoundDenied bool
}

// NewRelay returns a relay; Run starts it.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Relay{cfg: cfg, notify: make(chan struct{}, 1)}, nil
}

// Run relays until ctx ends. Broker and database failures are retried with
// backoff; Run returns only ctx's error.
func (r *Relay) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if !r.cfg.DisableListen {
		wg.Add(1)
		go func() { defer wg.Done(); r.listen(ctx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); r.runScheduler(ctx) }()
	defer r.disconnect()
	defer r.closeDB()
	defer r.writeMove(ctx)

	failures := 0
	heldBack := 0 // reads in a row that found events held back
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// A batch begun before a stop is finished, read, publish, confirm
		// and the read that carries its cursor move, rather than cut off
		// mid-statement (which closes the connection, and the move with
		// it, so the next leader would send the batch again); the
		// confirm timeout bounds how long that may take.
		bctx, cancelBatch := finishing(ctx, r.cfg.ConfirmTimeout)
		again, held, err := r.relayBatch(bctx)
		cancelBatch()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			failures++
			r.cfg.Metrics.relayError(r.cfg.Outbox.source, err)
			r.cfg.Logger.Warn("relay batch failed", "err", err, "failures", failures)
			if errors.Is(err, errBrokerConnection) {
				r.disconnect()
			}
			if errors.Is(err, errDatabase) {
				r.closeDB()
			}
			backoff := min(time.Duration(1<<min(failures, 6))*50*time.Millisecond, 5*time.Second)
			if wait.Sleep(ctx, jitter(backoff)) != nil {
				return ctx.Err()
			}
			continue
		}
		failures = 0
		if again {
			// A full batch, or one too large for the read to tell what
			// waits behind it: read again at once. The read writes this
			// batch's cursor move and finds what was committed meanwhile,
			// so the wake-ups those commits sent are spent.
			r.drainWakeups()
			heldBack, r.inDatabase = 0, false
			continue
		}
		// Nothing waits that this relay can read: sleep until a commit's
		// wake-up or the poll, whose read writes the last batch's cursor
		// move, pending until then (a stopping relay writes it).
		sleep := r.cfg.PollInterval
		if held {
			r.cfg.Metrics.heldBack(r.cfg.Outbox.source)
			if !r.inDatabase && heldBack > 0 && !r.databaseBoundDenied {
				// Committed events wait, a second read in a row,
				// behind the cluster's oldest running transaction,
				// which may be another database's, a long one: read
				// again below this database's own oldest one, at once
				// unless early reads are off.
				r.inDatabase = true
				if r.cfg.HeldBackRetry >= 0 {
					continue
				}
			}
			// Committed events wait behind an older transaction still
			// running. Its commit wakes nobody here, so look again
			// soon, less often the longer it runs.
			sleep = heldBackDelay(r.cfg.HeldBackRetry, heldBack, r.cfg.PollInterval)
			heldBack++
		} else {
			heldBack, r.inDatabase = 0, false
		}
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-r.cfg.Outbox.wake:
		case <-r.notify:
		case <-t.C:
		}
		t.Stop()
	}
}

// finishing returns a context that ends grace after ctx does, so that work
// begun before ctx ended may finish.
func finishing(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
	return fctx, func() { stop(); cancel() }
}

// heldBackDelay is the wait after the (n+1)th read in a row that found
// events held back: first doubled n times, at most limit; limit when first
// is negative.
func heldBackDelay(first time.Duration, n int, limit time.Duration) time.Duration {
	if first < 0 {
		return limit
	}
	return min(first<<min(n, 16), limit)
}

// drainWakeups discards pending wake-ups without waiting.
func (r *Relay) drainWakeups() {
	for {
		select {
		case <-r.cfg.Outbox.wake:
		case <-r.notify:
		default:
			return
		}
	}
}

var (
	errBrokerConnection = errors.New("broker connection")
	errDatabase         = errors.New("database")
)

// lead makes sure the relay has its connection and reports whether it holds
// the relay lock, trying to take it when it does not.
func (r *Relay) lead(ctx context.Context) (bool, error) {
	if r.db != nil && r.db.IsClosed() {
		r.closeDB()
	}
	if r.db == nil {
		pc, err := r.cfg.Pool.Acquire(ctx)
		if err != nil {
			return false, fmt.Errorf("%w: %v", errDatabase, err)
		}
		// The connection carries the lock and session settings, so it
		// never returns to the pool.
		r.db = pc.Hijack()
		// A cursor update lost in a database crash only sends events again,
		// which the inboxes absorb; the WAL flush it would wait for competes
		// with the writers'.
		if _, err := r.db.Exec(ctx, `SET synchronous_commit = off`); err != nil {
			return false, fmt.Errorf("%w: %v", errDatabase, err)
		}
	}
	if !r.leading {
		if err := r.db.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, relayLockID).Scan(&r.leading); err != nil {
			return false, fmt.Errorf("%w: relay lock: %v", errDatabase, err)
		}
		if r.leading {
			r.cfg.Logger.Info("relay leads: holds the outbox lock")
		}
		r.cfg.Metrics.setLeader(r.cfg.Outbox.source, r.leading)
	}
	return r.leading, nil
}

// closeDB drops the relay's connection, and with it the lock. A cursor
// move not yet written is dropped too: another relay may lead, or the
// cursor be rewound, before this one leads again, and a move kept that long
// would rest only on its guard (the cursor being exactly where the batch
// was read). The batch is sent again instead, as after a crash.
func (r *Relay) closeDB() {
	if r.db != nil {
		_ = r.db.Close(context.Background())
	}
	if r.leading {
		r.cfg.Metrics.setLeader(r.cfg.Outbox.source, false)
	}
	r.db, r.leading, r.moved = nil, false, nil
}

func (r *Relay) connect(ctx context.Context) error {
	if r.cc != nil && !r.cc.ch.IsClosed() {
		return nil
	}
	r.disconnect()
	conn, out, err := dial(ctx, r.cfg.AMQPURL, "relay:"+r.cfg.Outbox.source, func(err error) {
		r.cfg.Logger.Warn("relay cannot reach broker", "err", err)
	})
	if err != nil {
		return err
	}
	cc, err := newConfirmChannel(conn, out, r.cfg.BatchSize)
	if err == nil {
		err = declareExchange(cc.ch, r.cfg.Outbox.source)
	}
	if err != nil {
		conn.Close()
		return fmt.Errorf("%w: %v", errBrokerConnection, err)
	}
	r.conn, r.cc = conn, cc
	r.cfg.Logger.Info("relay connected to broker")
	return nil
}

func (r *Relay) disconnect() {
	if r.conn != nil {
		r.conn.Close()
	}
	r.conn, r.cc = nil, nil
}

type outboxRow struct {
	offset   int64
	txID     string // xid8 as text: pgx has no xid8 codec
	uuid     string
	payload  []byte
	metadata []byte
	created  time.Time
}

// outboxColumns are the columns scanOutboxRow reads, in its order.
const outboxColumns = `"offset", transaction_id::text AS transaction_id_text, uuid, payload::text, metadata::text, created_at`

// The relay reads only rows whose transaction id is below a bound under
// which no transaction that could still add a row to the outbox is
// running, so that a row never commits behind the cursor. clusterBound is
// the oldest transaction still running anywhere in the cluster (the
// statement's snapshot's xmin): cheap, and the bound of most reads.
// databaseBound is the oldest one still running in this database, or the
// snapshot's xmax when none is: every running transaction of the snapshot
// (pg_snapshot_xip) counts unless pg_stat_activity shows a backend of
// another database running it, and such a one writes no row here (a
// connection never changes database). pg_stat_activity is read after the
// snapshot is taken, so a transaction of this database running at the
// snapshot may have ended by then and show nowhere: it counts, which at
// worst holds a row back for one more read. Nor can one of this database's
// show as another's: pg_stat_activity reads a backend slot's database
// before its transaction id, and the backend running a transaction the
// snapshot saw running holds its slot from before the snapshot until
// after that transaction ends, so a slot that shows the transaction shows
// that backend's database. Prepared transactions show in no backend and
// count too. While another transaction runs, reading pg_stat_activity
// makes the server copy the status of every backend slot (0.4–1 ms a
// statement with 55 backends and max_connections at 400, where one
// reading clusterBound took 0.04 ms), so the relay reads below
// databaseBound only once two reads in a row below clusterBound left
// events held back (see Run): a hold that ends within the first early
// read costs nothing more.
const (
	clusterBound  = `pg_snapshot_xmin(pg_current_snapshot())`
	databaseBound = `(SELECT x FROM (
		SELECT x FROM pg_snapshot_xip(pg_current_snapshot()) AS x
		WHERE x::xid NOT IN (SELECT backend_xid FROM pg_stat_get_activity(NULL)
			WHERE backend_xid IS NOT NULL AND datid <> (SELECT oid FROM pg_database WHERE datname = current_database()))
		UNION ALL SELECT pg_snapshot_xmax(pg_current_snapshot())
	) AS running ORDER BY x LIMIT 1)`
)

// relayBatchQuery reads the batch after the cursor of consumer group $1 (and
// the cursor row's version, its xmin, which every update of it changes), at
// most $2 rows, in commit order, and only below clusterBound so that a
// transaction still in flight is never skipped; relayBatchQueryInDatabase
// reads below databaseBound. The cursor is compared as a
// row, (transaction_id, offset) > (cursor), which the primary key serves as
// one index range: written as "same transaction and later offset, or later
// transaction" the index is scanned from its first entry and every row
// already sent is filtered out one by one, so each batch would cost time in
// proportion to the history kept for retention. ORDER BY qualifies the
// column: the bare name would bind to the text output column and sort
// "100000" before "99999".
const (
	relayBatchQuery           = relayBatchHead + clusterBound + relayBatchTail
	relayBatchQueryInDatabase = relayBatchHead + databaseBound + relayBatchTail
	relayBatchHead            = `
	WITH cursor AS (
		SELECT offset_acked, last_processed_transaction_id, xmin FROM watermill_offsets_outbox WHERE consumer_group = $1
	)
	SELECT (SELECT offset_acked FROM cursor), (SELECT last_processed_transaction_id::text FROM cursor), (SELECT xmin::text FROM cursor),
	       ` + outboxColumns + ` FROM watermill_outbox
	WHERE (transaction_id, "offset") > ((SELECT last_processed_transaction_id FROM cursor), (SELECT offset_acked FROM cursor))
	  AND transaction_id < `
	relayBatchTail = `
	ORDER BY watermill_outbox.transaction_id, "offset"
	LIMIT $2`
)

// scanOutboxRow reads one row selected with outboxColumns.
func scanOutboxRow(row pgx.CollectableRow) (outboxRow, error) { return scanOutboxRowAfter(row) }

// scanOutboxRowAfter reads one row selected with leading columns, scanned
// into leading, then outboxColumns.
func scanOutboxRowAfter(row pgx.CollectableRow, leading ...any) (outboxRow, error) {
	var o outboxRow
	var payload, metadata *string
	err := row.Scan(append(leading, &o.offset, &o.txID, &o.uuid, &payload, &metadata, &o.created)...)
	if payload != nil {
		o.payload = []byte(*payload)
	}
	if metadata != nil {
		o.metadata = []byte(*metadata)
	}
	return o, err
}

// relayBatch publishes one batch and returns whether to read again at once
// (a batch was sent and more may wait behind it, see read) and whether
// committed events the read could not take were held back.
func (r *Relay) relayBatch(ctx context.Context) (again, heldBack bool, err error) {
	if err := r.connect(ctx); err != nil {
		return false, false, err
	}
	leader, err := r.lead(ctx)
	if err != nil || !leader {
		return false, false, err
	}
	from, batch, again, heldBack, err := r.read(ctx)
	if err != nil {
		return false, false, err
	}
	if len(batch) == 0 {
		return false, heldBack, nil
	}
	if err := r.publish(ctx, batch); err != nil {
		var unroutable *unroutableError
		if !errors.As(err, &unroutable) {
			return false, false, err
		}
		// The events before the unroutable one are confirmed and routed:
		// mark them, keep the unroutable one as the next to send.
		r.probe = true
		if unroutable.index == 0 {
			return false, false, err
		}
		if cerr := r.advance(ctx, from, batch[unroutable.index-1]); cerr != nil {
			return false, false, cerr
		}
		r.cfg.Metrics.relayed(r.cfg.Outbox.source, unroutable.index)
		return false, false, err
	}
	r.probe = false
	if r.afterConfirm != nil {
		if err := r.afterConfirm(len(batch)); err != nil {
			return false, false, err
		}
	}
	r.moved = &cursorMove{from: from, to: batch[len(batch)-1]}
	r.cfg.Metrics.relayed(r.cfg.Outbox.source, len(batch))
	return again, heldBack, nil
}

// read writes the pending cursor move, if any, and reads the next batch,
// in one round trip: both statements go in one pgx batch, which the server
// runs as one implicit transaction. The read takes the cursor from its
// table, so it starts after the move, and a rewind (which the move's guard
// leaves in place) wins. The move's transaction id can only hold the read's
// pg_snapshot_xmin back behind itself, the newest running, so it never lets
// the read skip a row; at worst a row committed in between waits for the
// next read. It returns where the batch was read from and its rows and,
// from one more statement in the same round trip that counts the committed
// events after the cursor (up to waitingProbe), whether to read again at
// once (the batch was full, or at least waitingProbe long, so what waits
// behind it is not known) and whether committed events wait that the
// batch does not hold. Those are held back by an older transaction still
// running (below clusterBound any database's transaction holds every
// outbox back, below databaseBound only this database's), or were
// committed after the read, and their commit's wake-up is pending.
func (r *Relay) read(ctx context.Context) (_ cursor, _ []outboxRow, again, heldBack bool, _ error) {
	b := &pgx.Batch{}
	if m := r.moved; m != nil {
		b.Queue(advanceQuery, m.to.offset, m.to.txID, relayGroup, m.from.offset, m.from.txID, m.from.version)
	}
	var from cursor
	var batch []outboxRow
	limit := r.batchLimit()
	query := relayBatchQuery
	if r.inDatabase {
		query = relayBatchQueryInDatabase
	}
	b.Queue(query, relayGroup, limit).Query(func(rows pgx.Rows) (err error) {
		batch, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (outboxRow, error) {
			return scanOutboxRowAfter(row, &from.offset, &from.txID, &from.version)
		})
		return err
	})
	var waiting int
	b.Queue(waitingQuery, relayGroup, waitingProbe).QueryRow(func(row pgx.Row) error { return row.Scan(&waiting) })
	if err := r.db.SendBatch(ctx, b).Close(); err != nil {
		// The implicit transaction rolled back: the move is still to write.
		// A failed read below databaseBound is not tried again at once,
		// and never again if the server will not show other sessions'
		// transactions to the service's role (EXECUTE on
		// pg_stat_get_activity revoked): held-back events then wait for
		// the cluster's oldest transaction, as before databaseBound.
		if r.inDatabase {
			r.inDatabase = false
			if isInsufficientPrivilege(err) {
				r.databaseBoundDenied = true
				r.cfg.Logger.Warn("relay: the database refuses to show other sessions' transactions (pg_stat_activity); "+
					"events held back by another database's transaction wait for it to end", "err", err)
			}
		}
		return from, nil, false, false, fmt.Errorf("%w: read outbox: %v", errDatabase, err)
	}
	r.moved = nil
	// The count's snapshot is later than the read's, so it sees every row
	// the read returned: more than those is events the batch does not hold.
	known := len(batch) < waitingProbe
	return from, batch, len(batch) == limit || !known, known && waiting > len(batch), nil
}

// waitingProbe is how many committed events after the cursor the relay's
// read counts: enough to tell what waits behind the small batches of a
// steady trickle, few enough to cost a short index range.
const waitingProbe = 32

// waitingQuery counts the committed events after the cursor of consumer
// group $1, up to $2: a short range of the primary key from the cursor
// (see relayBatchQuery), whatever sent history the outbox keeps.
const waitingQuery = `
	WITH cursor AS (
		SELECT offset_acked, last_processed_transaction_id FROM watermill_offsets_outbox WHERE consumer_group = $1
	)
	SELECT count(*) FROM (SELECT FROM watermill_outbox
		WHERE (transaction_id, "offset") > ((SELECT last_processed_transaction_id FROM cursor), (SELECT offset_acked FROM cursor))
		ORDER BY transaction_id, "offset" LIMIT $2) AS waiting`

// writeMove writes the pending cursor move on its own, as the relay stops,
// so that a restart does not send the last batch again.
func (r *Relay) writeMove(ctx context.Context) {
	if r.moved == nil || r.db == nil || !r.leading {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.advance(wctx, r.moved.from, r.moved.to); err != nil {
		r.cfg.Logger.Warn("relay could not write its cursor as it stopped; the last batch will be sent again", "err", err)
		return
	}
	r.moved = nil
}

func (r *Relay) batchLimit() int {
	if r.probe {
		return 1
	}
	return r.cfg.BatchSize
}

// cursor is a position in the outbox, the last event sent, as read from
// the cursor row at version (its xmin).
type cursor struct {
	offset  int64
	txID    string
	version string
}

// cursorMove moves the cursor from where a batch was read to its last row.
type cursorMove struct {
	from cursor
	to   outboxRow
}

// advanceQuery moves the cursor from ($4, $5) to ($1, $2) only when it is
// still where the batch was read and has not been written since (its xmin
// is still $6): a rewind that came in between wins, also one back to the
// very position the batch was read from.
const advanceQuery = `UPDATE watermill_offsets_outbox SET offset_acked = $1, last_processed_transaction_id = $2::xid8
	WHERE consumer_group = $3 AND offset_acked = $4 AND last_processed_transaction_id = $5::xid8 AND xmin = $6::xid`

// advance moves the cursor from where the batch was read to last. It moves
// nothing when the cursor is no longer where the batch was read (RewindRelay
// moved it meanwhile): the rewind wins, and the relay goes on from there.
func (r *Relay) advance(ctx context.Context, from cursor, last outboxRow) error {
	if _, err := r.db.Exec(ctx, advanceQuery, last.offset, last.txID, relayGroup, from.offset, from.txID, from.version); err != nil {
		return fmt.Errorf("%w: advance cursor: %v", errDatabase, err)
	}
	return nil
}

// unroutableError reports the first event of a batch the broker returned.
type unroutableError struct {
	index int
	err   error
}

func (e *unroutableError) Error() string { return e.err.Error() }
func (e *unroutableError) Unwrap() error { return e.err }

// publish sends the batch with mandatory routing and waits, within the
// confirm deadline, for every confirm. Any nack, return or timeout fails the
// whole batch: the cursor stays, and the batch is sent again.
func (r *Relay) publish(ctx context.Context, batch []outboxRow) error {
	exchange := ExchangeName(r.cfg.Outbox.source)
	start := time.Now()
	keys := make([]string, len(batch))
	msgs := make([]amqp.Publishing, len(batch))
	for i, row := range batch {
		p, md, err := rowToPublishing(row.uuid, row.payload, row.metadata)
		if err != nil {
			// A row that cannot be encoded can never be sent; stop here so
			// it is visible (status, metrics) instead of silently skipped.
			return err
		}
		p.DeliveryMode = amqp.Persistent
		p.Headers[HeaderCommittedAt] = row.created.UTC().Format(time.RFC3339Nano)
		keys[i], msgs[i] = md.Get(HeaderType), p
	}
	first, ret, err := r.cc.publish(ctx, exchange, keys, msgs, r.cfg.ConfirmTimeout)
	if err != nil {
		return err
	}
	if first >= 0 {
		r.cfg.Metrics.unroutable(r.cfg.Outbox.source)
		return &unroutableError{index: first, err: fmt.Errorf("%w: %s %s on %s (%s)",
			ErrUnroutable, ret.Type, ret.MessageId, exchange, ret.ReplyText)}
	}
	r.cfg.Metrics.confirmLatency(r.cfg.Outbox.source, time.Since(start))
	return nil
}

// relayLockID is the advisory lock the leading relay holds.
var relayLockID = lockID("shopmesh-relay")

func lockID(name string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name)) // never fails
	return int64(h.Sum64() >> 1)
}

// isInsufficientPrivilege reports whether err is PostgreSQL's refusal for
// lack of a privilege (SQLSTATE 42501).
func isInsufficientPrivilege(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501"
}
