package outbox_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/outbox"
)

// A message that never gets acknowledged (a consumer crashing on it every
// time) reaches the queue's delivery limit. The broker must dead-letter it
// to the queue's .dlq (a quorum queue with a limit and no route would drop
// it), and the consumer records it in the dead-letter store with a reason.
func TestDeliveryLimitDeadLettersInsteadOfDropping(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.newConsumer("ledger", func(c *outbox.ConsumerConfig) { c.DeliveryLimit = 2 })
	spec := c.Spec()
	withChannel(t, f.amqpURL, func(ch *amqp.Channel) error { return outbox.DeclareQueue(ch, spec) })
	f.runRelay(nil)
	if err := f.publish(1, "crashy"); err != nil {
		t.Fatal(err)
	}

	// A consumer that returns the message to the queue every time, as a
	// process that dies while handling it would.
	conn, err := amqp.Dial(f.amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	deliveries, err := ch.ConsumeWithContext(ctx, spec.Name, "crasher", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	returned := 0
	f.waitFor(30*time.Second, "message gone from the main queue", func() (bool, string) {
		select {
		case d := <-deliveries:
			returned++
			_ = d.Nack(false, true)
		case <-time.After(100 * time.Millisecond):
		}
		depth, err := outbox.QueueDepth(f.ctx, f.amqpURL, spec.Name+".dlq")
		return err == nil && depth == 1, fmt.Sprintf("returned %d times, dlq depth %d %v", returned, depth, err)
	})
	ch.Close()

	f.startConsumer(c)
	f.waitFor(20*time.Second, "broker dead letter stored", func() (bool, string) {
		n := f.count(`SELECT count(*) FROM dead_letters`)
		return n == 1, fmt.Sprintf("%d dead letters", n)
	})
	letters, err := outbox.ListDeadLetters(f.ctx, f.pool, false)
	if err != nil {
		t.Fatal(err)
	}
	d := letters[0]
	if !strings.Contains(d.Reason, "delivery limit") || d.Queue != spec.Name || d.RoutingKey != tickType || d.Exchange != "shopmesh.source" {
		t.Errorf("dead letter = reason %q queue %q routing key %q exchange %q", d.Reason, d.Queue, d.RoutingKey, d.Exchange)
	}
	// Replaying it applies it once.
	if err := outbox.ReplayDeadLetter(f.ctx, f.pool, f.amqpURL, d.ID); err != nil {
		t.Fatal(err)
	}
	f.waitApplied("ledger", 1, 20*time.Second)
	f.assertExactlyOnce("ledger")
}
