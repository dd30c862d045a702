package outbox_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/tests/testenv"
)

// 5. RabbitMQ stopped and restarted mid-stream, then PostgreSQL restarted:
// nothing is lost and the relay and consumer resume by themselves. The test
// runs its own broker node and database cluster so that restarting them does
// not disturb tests running in parallel.
func TestSurvivesBrokerAndDatabaseRestarts(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	rmq := testenv.StartRabbitMQ(t)
	f := newFixtureOn(t, pg.URL(), rmq.URL())
	f.startConsumer(f.newConsumer("ledger", nil))
	f.runRelay(nil)

	const total = 300
	var written sync.WaitGroup
	progress := make(chan int, total)
	written.Add(1)
	go func() {
		defer written.Done()
		defer close(progress)
		deadline := time.Now().Add(2 * time.Minute)
		for i := 1; i <= total; i++ {
			// A writer retries a failed transaction; a commit whose outcome
			// was lost may leave an extra event, which is still an event
			// that must be delivered exactly once.
			for f.publish(i, fmt.Sprintf("agg-%d", i%10)) != nil {
				if time.Now().After(deadline) {
					t.Errorf("writer could not commit event %d before its deadline", i)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			progress <- i
			time.Sleep(5 * time.Millisecond)
		}
	}()
	waitProgress := func(n int) {
		for i := range progress {
			if i >= n {
				return
			}
		}
	}

	waitProgress(total / 3)
	rmq.Stop()
	// Writers do not depend on the broker: commits go on while it is down.
	// (waitProgress is bounded by the writer's own deadline.)
	waitProgress(total/3 + 20)
	rmq.Start()

	waitProgress(2 * total / 3)
	pg.Stop()
	time.Sleep(500 * time.Millisecond) // the outage itself: nothing can commit meanwhile
	pg.Start()

	written.Wait()
	var events int
	f.waitFor(2*time.Minute, "every committed event applied", func() (bool, string) {
		// The pool may still hold connections the restart broke: a failed
		// look is looked at again.
		var err error
		if events, err = f.tryCount(`SELECT count(*) FROM watermill_outbox`); err != nil {
			return false, err.Error()
		}
		n, err := f.tryCount(`SELECT count(DISTINCT message_id) FROM ledger`)
		if err != nil {
			return false, err.Error()
		}
		return events >= total && n == events, fmt.Sprintf("%d of %d applied", n, events)
	})
	f.assertExactlyOnce("ledger")
	t.Logf("%d events, %d duplicates absorbed by the inbox", events, f.duplicates("ledger"))
}
