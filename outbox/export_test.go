package outbox

import (
	"context"

	amqp "github.com/rabbitmq/amqp091-go"
)

// SetAfterConfirm installs a hook that runs between the broker's confirm of a
// batch and the cursor update (the window a crash makes duplicates in).
func SetAfterConfirm(r *Relay, f func(batch int) error) { r.afterConfirm = f }

// The outbox reads whose cost must not grow with the history kept.
const (
	RelayBatchQuery           = relayBatchQuery
	RelayBatchQueryInDatabase = relayBatchQueryInDatabase
	WaitingQuery              = waitingQuery
	WaitingProbe              = waitingProbe
	StatsQuery                = statsQuery
	RelayGroup                = relayGroup
)

// Claim claims msgs in the inbox and counts the duplicates in a transaction
// of their own, as a batch does, and commits.
func Claim(c *Consumer, ctx context.Context, msgs []Message) ([]bool, error) {
	tx, claimed, err := c.begin(ctx, msgs, len(msgs) > 1, false)
	if err != nil {
		return nil, err
	}
	defer tx.close(ctx)
	_, st := withDeferred(ctx, tx)
	c.queueDuplicates(st, unclaimed(claimed))
	return claimed, tx.commit(ctx, st.held)
}

// WorkerOf is the worker (of n) that applies aggregate's messages.
func WorkerOf(aggregate string, n int) int {
	return partition(amqp.Delivery{Headers: amqp.Table{HeaderAggregateID: aggregate}}, n)
}
