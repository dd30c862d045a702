package contract

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/tests/system"
)

// inbox is the consumer every service reads its events with.
const inbox = "inbox"

// contractFailures are fragments of the reasons a consumer gives when it
// cannot read a message at all; a golden example must never meet one.
var contractFailures = []string{
	"unknown event type", "no handler for type", "upcast", "malformed envelope",
	"payload: ", "cannot unmarshal", "json: ", "does not handle",
}

// TestConsumerContracts feeds consumers what producers may send them: the
// golden example of every version of every type each one subscribes to,
// and types or versions it does not know.
func TestConsumerContracts(t *testing.T) {
	t.Parallel()
	sys := system.Start(t, system.Options{})
	pub := newPublisher(t, sys.AMQPURL)
	dbs := map[string]*pgxpool.Pool{}
	for _, svc := range system.Services {
		pool, err := pgxpool.New(context.Background(), sys.Databases[svc])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		dbs[svc] = pool
	}

	t.Run("golden examples", func(t *testing.T) {
		for _, consumer := range consumerServices() {
			if dbs[consumer] == nil {
				// A consumer left out of the system would pass here unchecked.
				t.Errorf("%s consumes events but does not run in the system (system.Services): its fixtures cannot be fed", consumer)
				continue
			}
			t.Run(consumer, func(t *testing.T) {
				t.Parallel()
				feedGoldenExamples(t, pub, consumer, dbs[consumer])
			})
		}
	})

	var refused []string
	t.Run("unknown types and versions", func(t *testing.T) {
		refused = unknownTypes(t, pub, dbs)
	})

	t.Run("retained order.placed.v1", func(t *testing.T) {
		retainedOrderPlaced(t, sys, dbs)
	})

	// The fixtures' effects travelled on to other services; whatever those
	// refused, they refused for a business reason, not as unreadable.
	for _, svc := range system.Services {
		for _, d := range deadLetters(t, sys, svc) {
			if isContractFailure(d.Reason) && !slices.Contains(refused, d.MessageID) {
				t.Errorf("%s could not read %s %s: %s", svc, d.Type, d.MessageID, d.Reason)
			}
		}
	}
}

// feedGoldenExamples delivers each fixture twice to the consumer's queue
// only (through the default exchange, so no other service sees it) and
// checks it is applied once. The fixtures follow the story, so every
// consumer has seen what an event presupposes (the product before its
// reservation, the order before its replies) and none may refuse one, not
// even for a business reason; a refusal as unreadable is reported as such.
func feedGoldenExamples(t *testing.T, pub *publisher, consumer string, db *pgxpool.Pool) {
	ctx := context.Background()
	queue := outbox.QueueName(consumer, inbox)
	before := duplicates(t, db)
	accepted := 0
	var report []string
	for _, seq := range fixtures(consumer) {
		for _, s := range seq {
			id := outbox.NewID()
			et, _ := contracts.Lookup(s.typ)
			msg := outboundMessage{id: id, typ: s.typ, source: et.Producer, aggregate: aggregateOf(s.payload), payload: s.payload}
			pub.publish(t, "", queue, msg)
			pub.publish(t, "", queue, msg)
			outcome := waitOutcome(t, ctx, db, id)
			switch {
			case outcome.accepted:
				accepted++
				report = append(report, fmt.Sprintf("%-40s accepted", s.typ))
			case isContractFailure(outcome.reason):
				t.Errorf("%s: the golden example of %s was refused as unreadable: %s", consumer, s.typ, outcome.reason)
			default:
				t.Errorf("%s: the golden example of %s was dead-lettered: %s", consumer, s.typ, outcome.reason)
			}
		}
	}
	// Every accepted fixture's second delivery was absorbed by the inbox.
	system.Eventually(t, 30*time.Second, consumer+" inbox absorbs the second deliveries", func() (bool, string) {
		got := duplicates(t, db) - before
		return got >= int64(accepted), fmt.Sprintf("%d duplicates counted, %d accepted fixtures delivered twice", got, accepted)
	})
	t.Logf("%s:\n  %s", consumer, strings.Join(report, "\n  "))
}

// outcome is what became of a delivered message.
type outcome struct {
	accepted bool
	reason   string
}

// waitOutcome waits until the consumer claimed the message in its inbox
// (applied) or dead-lettered it.
func waitOutcome(t *testing.T, ctx context.Context, db *pgxpool.Pool, id string) outcome {
	t.Helper()
	var o outcome
	system.Eventually(t, 30*time.Second, "message "+id+" applied or dead-lettered", func() (bool, string) {
		var claimed bool
		if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM inbox WHERE consumer = $1 AND message_id = $2)`, inbox, id).Scan(&claimed); err != nil {
			return false, err.Error()
		}
		if claimed {
			o = outcome{accepted: true}
			return true, ""
		}
		err := db.QueryRow(ctx, `SELECT reason FROM dead_letters WHERE consumer = $1 AND message_id = $2 ORDER BY id DESC LIMIT 1`, inbox, id).Scan(&o.reason)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, "neither claimed nor dead-lettered yet"
		}
		return err == nil, fmt.Sprint(err)
	})
	return o
}

func isContractFailure(reason string) bool {
	return slices.ContainsFunc(contractFailures, func(f string) bool { return strings.Contains(reason, f) })
}

// duplicates is the consumer's count of deliveries its inbox absorbed.
func duplicates(t *testing.T, db *pgxpool.Pool) int64 {
	t.Helper()
	st, err := outbox.ReadStats(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return st.Duplicates[inbox]
}

// unknownTypes: a consumer that meets a type or version it does not know
// dead-letters it with a reason naming the type; it never acknowledges it
// silently.
// It returns the ids of the messages it sent.
func unknownTypes(t *testing.T, pub *publisher, dbs map[string]*pgxpool.Pool) []string {
	ctx := context.Background()
	placed, _ := contracts.Lookup(contracts.TypeOrderPlacedV1)
	reserved, _ := contracts.Lookup(contracts.TypeStockReservedV1)

	// A future version on the producer's exchange, routed to inventory by a
	// binding an operator added ahead of the consumer's upgrade.
	future := "order.placed.v9"
	pub.bind(t, outbox.QueueName("inventory", inbox), outbox.ExchangeName("order"), future)

	cases := []struct {
		name, consumer, exchange, routingKey, typ string
		payload                                   []byte
	}{
		{"a future version through the producer's exchange", "inventory", outbox.ExchangeName("order"), future, future, placed.Example},
		{"an unsupported version sent to the queue", "order", "", outbox.QueueName("order", inbox), "inventory.stock_reserved.v7", reserved.Example},
		{"an unknown type sent to the queue", "notification", "", outbox.QueueName("notification", inbox), "order.teleported.v1", placed.Example},
		{"a type of the registry the consumer does not subscribe to", "payment", "", outbox.QueueName("payment", inbox), contracts.TypeOrderPlacedV1, placed.Example},
	}
	var sent []string
	for _, tc := range cases {
		id := outbox.NewID()
		sent = append(sent, id)
		t.Run(tc.name, func(t *testing.T) {
			db := dbs[tc.consumer]
			source, _, _ := strings.Cut(tc.typ, ".")
			pub.publish(t, tc.exchange, tc.routingKey, outboundMessage{id: id, typ: tc.typ, source: source, aggregate: aggregateOf(tc.payload), payload: tc.payload})
			o := waitOutcome(t, ctx, db, id)
			if o.accepted {
				t.Fatalf("%s accepted %s, a type it cannot know", tc.consumer, tc.typ)
			}
			if !strings.Contains(o.reason, tc.typ) {
				t.Errorf("dead letter reason %q does not name the type %s", o.reason, tc.typ)
			}
			t.Logf("%s dead-lettered %s: %s", tc.consumer, tc.typ, o.reason)
		})
	}
	return sent
}

// publisher sends messages the way a producer's relay does, with the
// envelope as headers and properties, and waits for the broker's confirm.
type publisher struct {
	mu sync.Mutex
	ch *amqp.Channel
}

func newPublisher(t *testing.T, url string) *publisher {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	return &publisher{ch: ch}
}

// outboundMessage is one message with its envelope.
type outboundMessage struct {
	id, typ, source, aggregate string
	payload                    []byte
}

func (p *publisher) publish(t *testing.T, exchange, routingKey string, m outboundMessage) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now().UTC()
	correlation := outbox.NewID()
	dc, err := p.ch.PublishWithDeferredConfirm(exchange, routingKey, true, false, amqp.Publishing{
		MessageId: m.id, Type: m.typ, AppId: m.source, CorrelationId: correlation, Timestamp: now,
		ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: m.payload,
		Headers: amqp.Table{
			outbox.HeaderID: m.id, outbox.HeaderType: m.typ, outbox.HeaderSource: m.source,
			outbox.HeaderAggregateID: m.aggregate, outbox.HeaderOccurredAt: now.Format(time.RFC3339Nano),
			outbox.HeaderCorrelationID: correlation,
		},
	})
	if err != nil {
		t.Fatalf("publish %s: %v", m.typ, err)
	}
	if !dc.Wait() {
		t.Fatalf("publish %s: the broker nacked it", m.typ)
	}
}

func (p *publisher) bind(t *testing.T, queue, exchange, key string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.ch.QueueBind(queue, key, exchange, false, nil); err != nil {
		t.Fatalf("bind %s to %s with %s: %v", queue, exchange, key, err)
	}
}
