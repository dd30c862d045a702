package outbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/outbox"
)

// A message the broker delivers again after its first consumer went away
// without acknowledging it (a crash before commit, a lost connection)
// carries broker headers such as an integer x-delivery-count. It must be
// applied, exactly once, not treated as malformed.
func TestRedeliveredMessageIsApplied(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.newConsumer("ledger", nil)
	withChannel(t, f.amqpURL, func(ch *amqp.Channel) error { return outbox.DeclareQueue(ch, c.Spec()) })
	f.runRelay(nil)
	if err := f.publish(1, "crash"); err != nil {
		t.Fatal(err)
	}

	// A consumer that takes the message and dies without acknowledging it.
	conn, err := amqp.Dial(f.amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(f.ctx, 20*time.Second)
	defer cancel()
	deliveries, err := ch.ConsumeWithContext(ctx, c.Queue(), "doomed", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-deliveries:
	case <-ctx.Done():
		t.Fatal("the message never arrived")
	}
	conn.Close() // unacknowledged: the broker returns it to the queue

	f.startConsumer(c)
	f.waitApplied("ledger", 1, 20*time.Second)
	f.assertExactlyOnce("ledger")
	if n := f.count(`SELECT count(*) FROM dead_letters`); n != 0 {
		letters, _ := outbox.ListDeadLetters(f.ctx, f.pool, true)
		t.Errorf("redelivered message dead-lettered: %+v", fmt.Sprint(letters))
	}
}
