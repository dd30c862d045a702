package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopmesh/shopmesh/internal/wait"
)

// Handler applies one message inside tx, the transaction that also claimed
// the message in the inbox. Events it publishes with Outbox.Publish(ctx, tx,
// ...) carry the message's correlation id and name it as their cause.
// Return a PermanentError for what retrying cannot fix.
type Handler func(ctx context.Context, tx pgx.Tx, msg Message) error

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	// Service owns the consumer: its queue is shopmesh.<service>.<name>.
	Service string
	// Name identifies the consumer in the inbox and dead-letter store.
	Name string
	// Pool is the service's database (inbox, dead letters, and the handler's
	// own tables live there).
	Pool *pgxpool.Pool
	// AMQPURL is the broker, with the service's own credentials and vhost.
	AMQPURL string
	// Outbox, when set, is woken after every commit so that events the
	// handler published leave at once.
	Outbox *Outbox
	// Prefetch is the broker's in-flight window. Default 64.
	Prefetch int
	// Workers process messages in parallel; all messages of one aggregate go
	// to the same worker, in order. Default 4.
	Workers int
	// MaxBatch is the most messages a worker applies in one transaction.
	// Unless Linger is set, a worker never waits for a batch to fill: it
	// takes what has already arrived for it, so batches form only under
	// load, where they save a commit (and its flush) per message. A batch
	// that fails in any way is applied again one message per transaction,
	// with the usual retries, so batching changes no outcome. 1 applies
	// every message on its own. Default 16, at most Prefetch.
	MaxBatch int
	// Linger is how long a worker waits, after a batch's first message
	// arrives, for more to fill it up to MaxBatch (a full batch starts at
	// once). It trades up to Linger of latency for fewer, larger
	// transactions when messages trickle in: for consumers nobody waits on
	// within milliseconds, such as read models and reports. Default 0:
	// never wait.
	Linger time.Duration
	// BatchLockTimeout bounds how long a batch transaction waits for a row
	// lock. A batch holds its locks longer than one message would, so two
	// batches could deadlock where single messages cannot; a batch that
	// waits this long gives way and is applied one message at a time.
	// Default 100ms.
	BatchLockTimeout time.Duration
	// MaxAttempts counts handler failures before a message is dead-lettered.
	// Infrastructure failures (database or connection down) do not count:
	// they are retried until the infrastructure is back. Default 5.
	MaxAttempts int
	// RetryBackoff is the first retry's delay; it doubles up to MaxBackoff.
	// Defaults 100ms and 5s.
	RetryBackoff time.Duration
	MaxBackoff   time.Duration
	// DeliveryLimit is the broker-side cap on deliveries of one message (it
	// catches a message that crashes the process every time). Default 20.
	DeliveryLimit int
	Metrics       *Metrics
	Logger        *slog.Logger
}

func (c *ConsumerConfig) setDefaults() {
	if c.Prefetch == 0 {
		c.Prefetch = 64
	}
	if c.Workers == 0 {
		c.Workers = 4
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = min(16, c.Prefetch)
	}
	if c.BatchLockTimeout == 0 {
		c.BatchLockTimeout = 100 * time.Millisecond
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.DeliveryLimit == 0 {
		c.DeliveryLimit = 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a configuration that cannot work.
func (c ConsumerConfig) Validate() error {
	switch {
	case !serviceName.MatchString(c.Service):
		return fmt.Errorf("consumer: service %q must be lower-case letters, digits or _", c.Service)
	case !serviceName.MatchString(c.Name):
		return fmt.Errorf("consumer: name %q must be lower-case letters, digits or _", c.Name)
	case c.Pool == nil:
		return errors.New("consumer: pool is required")
	case c.AMQPURL == "":
		return errors.New("consumer: AMQP URL is required")
	case c.Workers < 1 || c.Prefetch < c.Workers:
		return fmt.Errorf("consumer: need 1 <= workers (%d) <= prefetch (%d)", c.Workers, c.Prefetch)
	case c.MaxBatch < 1 || c.MaxBatch > c.Prefetch:
		return fmt.Errorf("consumer: need 1 <= max batch (%d) <= prefetch (%d)", c.MaxBatch, c.Prefetch)
	case c.Linger < 0 || c.Linger > MaxLinger:
		return fmt.Errorf("consumer: linger %v must be between 0 and %v", c.Linger, MaxLinger)
	}
	return nil
}

// MaxLinger bounds ConsumerConfig.Linger: a batch's first message waits
// at most this long unacknowledged in a worker.
const MaxLinger = 5 * time.Second

// Consumer receives the event types it has handlers for from its own quorum
// queue and applies each inside an inbox-guarded transaction.
type Consumer struct {
	cfg   ConsumerConfig
	queue string
	// lockTimeout is a batch transaction's lock_timeout, in milliseconds.
	lockTimeout string
	handlers    map[string]Handler
	tracer      trace.Tracer
}

// NewConsumer returns a consumer; register handlers with Handle, then Run.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Consumer{
		cfg:         cfg,
		queue:       QueueName(cfg.Service, cfg.Name),
		lockTimeout: strconv.FormatInt(max(1, cfg.BatchLockTimeout.Milliseconds()), 10),
		handlers:    map[string]Handler{},
		tracer:      otel.Tracer("github.com/shopmesh/shopmesh/outbox"),
	}, nil
}

// Handle registers the handler of one event type (`<service>.<fact>.v<N>`);
// the queue is bound to exactly the registered types. Call before Run.
func (c *Consumer) Handle(eventType string, h Handler) error {
	if _, err := ProducerOf(eventType); err != nil {
		return err
	}
	if _, dup := c.handlers[eventType]; dup {
		return fmt.Errorf("consumer %s: second handler for %s", c.cfg.Name, eventType)
	}
	c.handlers[eventType] = h
	return nil
}

// Queue is the name of the consumer's queue.
func (c *Consumer) Queue() string { return c.queue }

// Name is the consumer's name in the inbox and dead-letter store.
func (c *Consumer) Name() string { return c.cfg.Name }

// Spec describes the consumer's queue and bindings.
func (c *Consumer) Spec() QueueSpec {
	types := make([]string, 0, len(c.handlers))
	for t := range c.handlers {
		types = append(types, t)
	}
	sort.Strings(types)
	return QueueSpec{Name: c.queue, Types: types, DeliveryLimit: c.cfg.DeliveryLimit, SingleActiveConsumer: true}
}

// Run consumes until ctx ends, reconnecting after broker failures. It
// returns ctx's error, or an error when the configuration cannot work.
func (c *Consumer) Run(ctx context.Context) error {
	if len(c.handlers) == 0 {
		return fmt.Errorf("consumer %s has no handlers", c.cfg.Name)
	}
	for {
		err := c.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.cfg.Logger.Warn("consumer session ended; reconnecting", "consumer", c.cfg.Name, "err", err)
		if wait.Sleep(ctx, jitter(time.Second)) != nil {
			return ctx.Err()
		}
	}
}

// session runs one broker connection: it consumes the queue and its broker
// dead-letter queue until the connection fails or ctx ends.
func (c *Consumer) session(ctx context.Context) error {
	conn, _, err := dial(ctx, c.cfg.AMQPURL, "consumer:"+c.queue, func(err error) {
		c.cfg.Logger.Warn("consumer cannot reach broker", "consumer", c.cfg.Name, "err", err)
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := DeclareQueue(ch, c.Spec()); err != nil {
		return err
	}
	if err := ch.Qos(c.cfg.Prefetch, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.ConsumeWithContext(ctx, c.queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", c.queue, err)
	}
	dlqCh, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := dlqCh.Qos(16, 0, false); err != nil {
		return err
	}
	brokerDead, err := dlqCh.ConsumeWithContext(ctx, deadLetterQueue(c.queue), "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", deadLetterQueue(c.queue), err)
	}
	c.cfg.Logger.Info("consumer started", "consumer", c.cfg.Name, "queue", c.queue, "types", len(c.handlers))

	// sctx ends when this session ends; deliveries of a dead channel are
	// not started (the broker redelivers them), in-flight ones finish.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))

	acks := newAckWindow(ch, strayDelay)
	var wg sync.WaitGroup
	inputs := make([]chan amqp.Delivery, c.cfg.Workers)
	for i := range inputs {
		inputs[i] = make(chan amqp.Delivery, c.cfg.Prefetch)
		wg.Add(1)
		go func(in <-chan amqp.Delivery) {
			defer wg.Done()
			batch := make([]amqp.Delivery, 0, c.cfg.MaxBatch)
			for d := range in {
				batch = gather(sctx, append(batch[:0], d), in, c.cfg.MaxBatch, c.cfg.Linger)
				c.processBatch(sctx, batch)
			}
		}(inputs[i])
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for d := range brokerDead {
			if sctx.Err() == nil {
				c.storeBrokerDeadLetter(sctx, d)
			}
		}
	}()
	defer func() {
		for _, in := range inputs {
			close(in)
		}
		cancel()
		acks.flush()
		conn.Close()
		wg.Wait()
		acks.stop()
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-closed:
			return fmt.Errorf("broker connection closed: %v", err)
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("delivery channel closed")
			}
			acks.track(&d)
			inputs[partition(d, len(inputs))] <- d
		}
	}
}

// gather adds to batch what has already queued on in, up to max
// deliveries in all. With a linger it then waits for more until the batch
// is full, linger has passed since it was called (when the batch's first
// delivery had arrived), in closes or ctx ends.
func gather(ctx context.Context, batch []amqp.Delivery, in <-chan amqp.Delivery, max int, linger time.Duration) []amqp.Delivery {
	batch, open := takeQueued(batch, in, max)
	if linger <= 0 || !open || len(batch) >= max {
		return batch
	}
	timer := time.NewTimer(linger)
	defer timer.Stop()
	for len(batch) < max {
		select {
		case d, ok := <-in:
			if !ok {
				return batch
			}
			batch = append(batch, d)
		case <-timer.C:
			return batch
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}

// takeQueued adds to batch what has already queued on in, up to max
// deliveries in all, without waiting; open is false once in has closed.
func takeQueued(batch []amqp.Delivery, in <-chan amqp.Delivery, max int) (_ []amqp.Delivery, open bool) {
	for len(batch) < max {
		select {
		case d, ok := <-in:
			if !ok {
				return batch, false
			}
			batch = append(batch, d)
		default:
			return batch, true
		}
	}
	return batch, true
}

// partition maps a delivery to a worker by its aggregate id, so one
// aggregate's messages are applied one at a time, in queue order.
func partition(d amqp.Delivery, n int) int {
	key, _ := d.Headers[HeaderAggregateID].(string)
	h := fnv.New32a()
	_, _ = io.WriteString(h, key)
	return int(h.Sum32() % uint32(n))
}

// errDuplicate reports a message the inbox already holds.
var errDuplicate = errors.New("duplicate")

// process applies one delivery and acknowledges it once its effects (or its
// dead letter) are committed. It returns without acknowledging only when the
// session ends, so the broker redelivers.
func (c *Consumer) process(ctx context.Context, d amqp.Delivery) {
	msg, err := deliveryToMessage(d)
	if err != nil {
		c.deadLetter(ctx, d, msg, fmt.Sprintf("malformed envelope: %v", err), 1)
		return
	}
	h, ok := c.handlers[msg.Type]
	if !ok {
		c.deadLetter(ctx, d, msg, fmt.Sprintf("no handler for type %s in consumer %s", msg.Type, c.cfg.Name), 1)
		return
	}
	failures, infraWait := 0, c.cfg.RetryBackoff
	for {
		start := time.Now()
		err := c.apply(ctx, msg, h)
		switch {
		case err == nil:
			c.cfg.Metrics.committed(c.cfg.Service, c.cfg.Name, 1, time.Since(start))
			c.cfg.Metrics.applied(c.cfg.Service, c.cfg.Name, msg.Type, committedAt(d))
			if c.cfg.Outbox != nil {
				c.cfg.Outbox.Notify()
			}
			c.ack(d)
			return
		case errors.Is(err, errDuplicate):
			c.cfg.Metrics.duplicate(c.cfg.Service, c.cfg.Name)
			c.ack(d)
			return
		case ctx.Err() != nil:
			return
		case isInfrastructure(err):
			c.cfg.Logger.Warn("consumer waiting for infrastructure", "consumer", c.cfg.Name, "message_id", msg.ID, "err", err)
			if wait.Sleep(ctx, jitter(infraWait)) != nil {
				return
			}
			infraWait = min(infraWait*2, c.cfg.MaxBackoff)
			continue
		}
		failures++
		if IsPermanent(err) || failures >= c.cfg.MaxAttempts {
			reason := err.Error()
			if !IsPermanent(err) {
				reason = fmt.Sprintf("retries exhausted after %d attempts: %v", failures, err)
			}
			c.deadLetter(ctx, d, msg, reason, failures)
			return
		}
		c.cfg.Metrics.retry(c.cfg.Service, c.cfg.Name)
		c.cfg.Logger.Info("handler failed; retrying", "consumer", c.cfg.Name, "message_id", msg.ID, "type", msg.Type, "attempt", failures, "err", err)
		backoff := min(c.cfg.RetryBackoff<<(failures-1), c.cfg.MaxBackoff)
		if wait.Sleep(ctx, jitter(backoff)) != nil {
			return
		}
	}
}

// processBatch applies ds in order, as many as it can in one transaction.
// When the batch fails (a handler error, a lock it waited too long for, a
// lost connection, anything) nothing of it is committed: the messages before
// the one that failed are applied again as a batch, the failed one alone with
// the usual retries and dead-lettering, then the rest; when the batch's
// Deferreds fail to flush, every message is applied alone. Each message thus
// ends exactly as it would have alone, in the same order per aggregate. It stops
// without acknowledging the rest when the session ends.
func (c *Consumer) processBatch(ctx context.Context, ds []amqp.Delivery) {
	if len(ds) == 0 || ctx.Err() != nil {
		return
	}
	if len(ds) == 1 {
		c.process(ctx, ds[0])
		return
	}
	failed := c.applyBatch(ctx, ds)
	if failed == len(ds) {
		return
	}
	c.cfg.Metrics.batchSplit(c.cfg.Service, c.cfg.Name)
	if failed == eachAlone {
		for _, d := range ds {
			if ctx.Err() != nil {
				return
			}
			c.process(ctx, d)
		}
		return
	}
	c.processBatch(ctx, ds[:failed])
	if ctx.Err() == nil {
		c.process(ctx, ds[failed])
	}
	c.processBatch(ctx, ds[failed+1:])
}

// eachAlone is what applyBatch returns when the batch failed as a whole
// (its Deferreds did not flush): no message can be blamed, so each is
// applied alone.
const eachAlone = -1

// applyBatch claims and applies ds in one transaction, commits and
// acknowledges them, and returns len(ds). When message i fails, or i is not
// a well-formed message with a handler, it rolls back and returns i; when
// the transaction cannot begin, claim or commit, 0; when its Deferreds
// cannot flush, eachAlone.
func (c *Consumer) applyBatch(ctx context.Context, ds []amqp.Delivery) int {
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	start := time.Now()
	msgs := make([]Message, len(ds))
	handlers := make([]Handler, len(ds))
	for i, d := range ds {
		msg, err := deliveryToMessage(d)
		if err != nil {
			return i
		}
		h, ok := c.handlers[msg.Type]
		if !ok {
			return i
		}
		msgs[i], handlers[i] = msg, h
	}
	claimed, done := c.applyBatchTx(tctx, msgs, handlers, true)
	if done == claimAgain {
		claimed, done = c.applyBatchTx(tctx, msgs, handlers, false)
	}
	if done != len(ds) {
		return done
	}
	c.cfg.Metrics.committed(c.cfg.Service, c.cfg.Name, len(ds), time.Since(start))
	for i, d := range ds {
		if claimed[i] {
			c.cfg.Metrics.applied(c.cfg.Service, c.cfg.Name, msgs[i].Type, committedAt(d))
		} else {
			c.cfg.Metrics.duplicate(c.cfg.Service, c.cfg.Name)
		}
		c.ack(d)
	}
	if c.cfg.Outbox != nil {
		c.cfg.Outbox.Notify()
	}
	return len(ds)
}

// claimAgain is what an attempt with a guarded claim returns when it
// failed and the claim did not succeed (or was never sent): a message may
// be one the inbox already holds, so the batch is tried again with a claim
// that tells which.
const claimAgain = -2

// applyBatchTx is one transaction of applyBatch: it returns which messages
// it claimed and len(msgs) once committed, or what applyBatch returns for
// a failure, or claimAgain.
func (c *Consumer) applyBatchTx(ctx context.Context, msgs []Message, handlers []Handler, guard bool) ([]bool, int) {
	claimed, guarded, err := c.attempt(ctx, msgs, handlers, true, guard)
	var failed *handlerError
	var held heldCommitError
	switch {
	case err == nil:
		return claimed, len(msgs)
	case guard && !guarded:
		return nil, claimAgain
	case errors.As(err, &failed):
		return nil, failed.index
	case errors.Is(err, errFlush), errors.As(err, &held):
		return nil, eachAlone
	}
	return nil, 0
}

// apply runs one attempt: claim the message in the inbox, run the handler,
// commit. A message already claimed commits nothing and returns errDuplicate.
// The claim first rides with the handler's first statement (or the commit);
// when the attempt fails without that claim having succeeded, the message
// may be a copy the inbox holds, and it is tried again with the claim sent
// first, which tells.
func (c *Consumer) apply(ctx context.Context, msg Message, h Handler) (err error) {
	// A handler that has started is allowed to finish even when the session
	// ends: its commit and the broker's redelivery race harmlessly.
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	msgs, handlers := []Message{msg}, []Handler{h}
	claimed, guarded, err := c.attempt(tctx, msgs, handlers, false, true)
	if err != nil && !guarded {
		claimed, _, err = c.attempt(tctx, msgs, handlers, false, false)
	}
	if err != nil {
		return err
	}
	if !claimed[0] {
		return errDuplicate
	}
	return nil
}

// attempt runs msgs in one transaction: it claims them (guard: see
// begin), runs their handlers (applyIn) and commits. guarded reports that
// a guarded claim was sent and succeeded. A commit that failed carrying
// held writes is a heldCommitError.
func (c *Consumer) attempt(ctx context.Context, msgs []Message, handlers []Handler, lockTimeout, guard bool) (claimed []bool, guarded bool, err error) {
	tx, claimed, err := c.begin(ctx, msgs, lockTimeout, guard)
	if err != nil {
		return nil, false, err
	}
	defer tx.close(ctx)
	st, err := c.applyIn(ctx, tx, msgs, handlers, claimed)
	if err == nil {
		if err = tx.commit(ctx, st.held); err != nil && st.held != nil {
			err = heldCommitError{err}
		}
	}
	if err != nil {
		return nil, tx.guarded, err
	}
	st.committed()
	return claimed, tx.guarded, nil
}

// heldCommitError is a commit that failed carrying held writes: any of them
// may have failed, so no one message can be blamed. It reads as the error
// it wraps.
type heldCommitError struct{ err error }

func (e heldCommitError) Error() string { return e.err.Error() }
func (e heldCommitError) Unwrap() error { return e.err }

// applyIn is a consumer transaction's work between its claim and its
// commit, alone or batched: run the handler of each message claimed, flush
// the transaction's Deferreds and count the duplicates (the messages not
// claimed). It returns the transaction's state: held is what its commit
// must carry, committed runs after the commit. A handler's failure is a
// *handlerError naming the message; a flush's wraps errFlush, and so does a
// handler's failure when statements an earlier handler held were sent with
// its own (either may have failed).
func (c *Consumer) applyIn(ctx context.Context, tx *connTx, msgs []Message, handlers []Handler, claimed []bool) (*deferredState, error) {
	hctx, st := withDeferred(ctx, tx)
	for i, msg := range msgs {
		if claimed[i] {
			st.batch = append(st.batch, msg)
		}
	}
	for i, msg := range msgs {
		st.handler, st.sentOthers = i, false
		if err := c.handle(hctx, st.tx, msg, handlers[i], claimed[i]); err != nil {
			if st.sentOthers { // what an earlier handler held failed with it, perhaps
				return nil, fmt.Errorf("%w: %w", errFlush, err)
			}
			return nil, &handlerError{index: i, err: err}
		}
	}
	st.handler = len(msgs)
	if err := st.flush(ctx, st.tx); err != nil {
		return nil, fmt.Errorf("%w: %w", errFlush, err)
	}
	c.queueDuplicates(st, unclaimed(claimed))
	return st, nil
}

// handlerError is the failure of the handler of msgs[index]; it unwraps to
// the handler's error, so retries and dead letters see that error.
type handlerError struct {
	index int
	err   error
}

func (e *handlerError) Error() string { return e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

// errFlush marks the failure of a transaction's Deferreds.
var errFlush = errors.New("deferred writes")

// begin opens a consumer transaction and claims msgs in the inbox in one
// round trip: the BEGIN travels in the claim's batch (beginTx),
// and so does a batch transaction's lock timeout. claimed reports which
// messages were new: not the ones the inbox already held, nor second copies
// within msgs.
//
// With guard, it sends nothing yet: the claim, a plain insert into the
// inbox, becomes the transaction's guard (see connTx), sent with the BEGIN
// in front of the handlers' first statement or the commit, which saves the
// round trip of its own. Every message counts as claimed; if one is not
// new, the insert fails, and with it the handler's statements and the
// transaction, and the caller tries again without guard.
func (c *Consumer) begin(ctx context.Context, msgs []Message, lockTimeout, guard bool) (tx *connTx, claimed []bool, err error) {
	b := &pgx.Batch{}
	if lockTimeout {
		b.Queue(`SELECT set_config('lock_timeout', $1, true)`, c.lockTimeout)
	}
	claimed = make([]bool, len(msgs))
	if guard {
		c.queueGuardedClaim(b, msgs)
		if tx, err = acquire(ctx, c.cfg.Pool); err != nil {
			return nil, nil, fmt.Errorf("begin: %w", err)
		}
		tx.guard = b
		for i := range claimed {
			claimed[i] = true
		}
		return tx, claimed, nil
	}
	c.queueClaim(b, msgs, claimed)
	if tx, err = beginTx(ctx, c.cfg.Pool, b); err != nil {
		return nil, nil, fmt.Errorf("begin and claim: %w", err)
	}
	return tx, claimed, nil
}

// queueGuardedClaim queues the claim of msgs that fails if the inbox holds
// any of them already (or msgs holds one twice).
func (c *Consumer) queueGuardedClaim(b *pgx.Batch, msgs []Message) {
	if len(msgs) == 1 {
		b.Queue(`INSERT INTO inbox (consumer, message_id, type) VALUES ($1, $2, $3)`, c.cfg.Name, msgs[0].ID, msgs[0].Type)
		return
	}
	ids, types := idsAndTypes(msgs)
	b.Queue(`INSERT INTO inbox (consumer, message_id, type)
		SELECT $1, m.id, m.type FROM unnest($2::text[], $3::text[]) AS m(id, type)`, c.cfg.Name, ids, types)
}

// idsAndTypes are the claim's arguments for a batch: msgs' ids and types.
func idsAndTypes(msgs []Message) (ids, types []string) {
	ids, types = make([]string, len(msgs)), make([]string, len(msgs))
	for i, m := range msgs {
		ids[i], types[i] = m.ID, m.Type
	}
	return ids, types
}

// unclaimed counts the duplicates among claims.
func unclaimed(claimed []bool) int {
	n := 0
	for _, ok := range claimed {
		if !ok {
			n++
		}
	}
	return n
}

// queueClaim queues the one statement that claims msgs in the inbox; its
// result marks claimed[i] for each message the inbox did not hold yet (the
// first copy only, when msgs holds one twice).
func (c *Consumer) queueClaim(b *pgx.Batch, msgs []Message, claimed []bool) {
	if len(msgs) == 1 { // the common case when idle: no arrays to build or rows to read
		b.Queue(`INSERT INTO inbox (consumer, message_id, type) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			c.cfg.Name, msgs[0].ID, msgs[0].Type).Exec(func(tag pgconn.CommandTag) error {
			claimed[0] = tag.RowsAffected() == 1
			return nil
		})
		return
	}
	ids, types := idsAndTypes(msgs)
	b.Queue(`INSERT INTO inbox (consumer, message_id, type)
		SELECT $1, m.id, m.type FROM unnest($2::text[], $3::text[]) AS m(id, type)
		ON CONFLICT DO NOTHING RETURNING message_id`, c.cfg.Name, ids, types).Query(func(rows pgx.Rows) error {
		fresh := make(map[string]bool, len(msgs))
		var id string
		if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { fresh[id] = true; return nil }); err != nil {
			return fmt.Errorf("inbox claim: %w", err)
		}
		for i, m := range msgs {
			if claimed[i] = fresh[m.ID]; claimed[i] {
				delete(fresh, m.ID) // a second copy in msgs is a duplicate
			}
		}
		return nil
	})
}

// queueDuplicates adds n to the consumer's absorbed redeliveries with the
// transaction's commit, the last statement before it: the counter is one
// row per consumer, which concurrent transactions of the consumer would
// otherwise wait on longer.
func (c *Consumer) queueDuplicates(st *deferredState, n int) {
	if n == 0 {
		return
	}
	st.hold(&pgx.Batch{QueuedQueries: []*pgx.QueuedQuery{{SQL: `INSERT INTO inbox_duplicates (consumer, count) VALUES ($1, $2)
		ON CONFLICT (consumer) DO UPDATE SET count = inbox_duplicates.count + $2`, Arguments: []any{c.cfg.Name, n}}}})
}

// handle runs msg's handler inside tx with the message's correlation,
// cause and trace; a message the inbox already held (not claimed) gets its
// span, marked as a duplicate, and no handler.
func (c *Consumer) handle(ctx context.Context, tx pgx.Tx, msg Message, h Handler, claimed bool) error {
	hctx := withCausation(WithCorrelation(ctx, msg.CorrelationID), msg.ID)
	if msg.Traceparent != "" {
		hctx = propagation.TraceContext{}.Extract(hctx, propagation.MapCarrier{"traceparent": msg.Traceparent})
	}
	hctx, span := c.tracer.Start(hctx, "consume "+msg.Type, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.message.id", msg.ID), attribute.String("shopmesh.consumer", c.cfg.Name),
			attribute.Bool("shopmesh.duplicate", !claimed)))
	defer span.End()
	if !claimed {
		return nil
	}
	if err := h(hctx, tx, msg); err != nil {
		span.RecordError(err)
		return err
	}
	return nil
}

func (c *Consumer) ack(d amqp.Delivery) {
	if err := d.Ack(false); err != nil {
		// The effects are committed; the redelivery will be a duplicate.
		c.cfg.Logger.Debug("ack failed", "consumer", c.cfg.Name, "err", err)
	}
}

// deadLetter stores the message with its reason, then acknowledges it. The
// store is retried until it succeeds or the session ends.
func (c *Consumer) deadLetter(ctx context.Context, d amqp.Delivery, msg Message, reason string, attempts int) {
	backoff := c.cfg.RetryBackoff
	for {
		err := storeDeadLetter(ctx, c.cfg.Pool, c.cfg.Name, c.queue, d, msg, reason, attempts)
		if err == nil {
			break
		}
		c.cfg.Logger.Warn("cannot store dead letter", "consumer", c.cfg.Name, "err", err)
		if wait.Sleep(ctx, jitter(backoff)) != nil {
			return
		}
		backoff = min(backoff*2, c.cfg.MaxBackoff)
	}
	c.cfg.Metrics.deadLettered(c.cfg.Service, c.cfg.Name)
	c.cfg.Logger.Error("message dead-lettered", "consumer", c.cfg.Name, "message_id", msg.ID, "type", msg.Type, "reason", reason)
	c.ack(d)
}

// storeBrokerDeadLetter records what the broker dead-lettered (a message
// whose deliveries reached the queue's delivery limit).
func (c *Consumer) storeBrokerDeadLetter(ctx context.Context, d amqp.Delivery) {
	msg, _ := deliveryToMessage(d)
	reason := "broker dead-lettered: " + headerString(d.Headers, "x-first-death-reason")
	if reason == "broker dead-lettered: delivery_limit" {
		reason = fmt.Sprintf("delivery limit of %d reached (the consumer never finished processing it)", c.cfg.DeliveryLimit)
	}
	// Keep the original routing key and exchange, not the dead-letter ones.
	if x, ok := d.Headers["x-death"].([]any); ok && len(x) > 0 {
		if t, ok := x[0].(amqp.Table); ok {
			if ex, ok := t["exchange"].(string); ok {
				d.Exchange = ex
			}
			if keys, ok := t["routing-keys"].([]any); ok && len(keys) > 0 {
				if k, ok := keys[0].(string); ok {
					d.RoutingKey = k
				}
			}
		}
	}
	c.deadLetter(ctx, d, msg, reason, c.cfg.DeliveryLimit)
}

// committedAt is when the delivery's event was committed to its outbox
// (zero when the header is missing).
func committedAt(d amqp.Delivery) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, headerString(d.Headers, HeaderCommittedAt))
	return t
}

func headerString(h amqp.Table, key string) string {
	s, _ := h[key].(string)
	return s
}

// isInfrastructure reports failures of the database or the connection to it,
// as opposed to failures of the handler's logic.
func isInfrastructure(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "53", "57", "58": // connection, resources, operator intervention, system
			return true
		}
		return pgErr.Code == "40001" || pgErr.Code == "40P01" // serialization failure, deadlock
	}
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	return errors.As(err, &connectErr) || errors.As(err, &netErr) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.Is(err, pgx.ErrTxClosed) || isConnClosed(err)
}

func isConnClosed(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == "conn closed" || e.Error() == "closed pool" {
			return true
		}
	}
	return false
}

// headersJSON keeps an AMQP header table as JSON for the dead-letter store.
func headersJSON(h amqp.Table) []byte {
	flat := map[string]any{}
	for k, v := range h {
		switch v.(type) {
		case string, bool, int, int8, int16, int32, int64, float32, float64:
			flat[k] = v
		default:
			flat[k] = fmt.Sprint(v)
		}
	}
	b, _ := json.Marshal(flat)
	return b
}
