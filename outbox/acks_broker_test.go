package outbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/outbox"
)

// The consumer acknowledges a finished run of deliveries at once, and a
// delivery finished behind an unfinished one on its own shortly after. So
// one aggregate whose message is stuck (a long lock wait) does not keep the
// other workers' finished messages in the prefetch window: with prefetch 4,
// twenty messages of other aggregates pass it. After a graceful stop nothing
// is left unacknowledged, so a restarted consumer receives no copies.
func TestAStuckAggregateDoesNotHoldTheOthersInThePrefetchWindow(t *testing.T) {
	f := newFixture(t)
	const workers = 2
	slow := "slow"
	var fast []string
	for i := 0; len(fast) < 4; i++ {
		if a := fmt.Sprintf("fast-%d", i); outbox.WorkerOf(a, workers) != outbox.WorkerOf(slow, workers) {
			fast = append(fast, a)
		}
	}
	release := make(chan struct{})
	ledger := ledgerHandler("acks")
	handler := func(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
		if msg.AggregateID == slow {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return ledger(ctx, tx, msg)
	}
	c := f.newConsumerWith("acks", handler, func(cfg *outbox.ConsumerConfig) {
		cfg.Prefetch, cfg.Workers, cfg.MaxBatch = 4, workers, 1
	})
	f.declare(c)
	// The stuck message is first in the queue, so it holds the lowest tag.
	if err := f.publish(1, slow); err != nil {
		t.Fatal(err)
	}
	for seq := 2; seq <= 21; seq++ {
		if err := f.publish(seq, fast[seq%len(fast)]); err != nil {
			t.Fatal(err)
		}
	}
	f.relayAll()
	stop := f.run(c.Run)

	f.waitApplied("acks", 20, 30*time.Second)
	if n := f.count(`SELECT count(*) FROM ledger WHERE aggregate = $1`, slow); n != 0 {
		t.Fatalf("the stuck message was applied %d times before it was released", n)
	}
	close(release)
	f.waitApplied("acks", 21, 30*time.Second)
	stop()

	// A restarted consumer with one worker applies in queue order: a copy
	// of anything left unacknowledged would come before the new event.
	again := f.newConsumer("acks", func(cfg *outbox.ConsumerConfig) { cfg.Workers = 1 })
	f.run(again.Run)
	if err := f.publish(22, fast[0]); err != nil {
		t.Fatal(err)
	}
	f.runRelay(nil)
	f.waitApplied("acks", 22, 30*time.Second)
	if n := f.duplicates("acks"); n != 0 {
		t.Errorf("the restarted consumer received %d copies of acknowledged messages", n)
	}
	f.assertExactlyOnce("acks")
}
