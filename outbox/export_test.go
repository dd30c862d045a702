package outbox

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// SetAfterConfirm installs a hook that runs between the broker's confirm of a
// batch and the cursor update (the window a crash makes duplicates in).
func SetAfterConfirm(r *Relay, f func(batch int) error) { r.afterConfirm = f }

// The outbox reads whose cost must not grow with the history kept.
const (
	RelayBatchQuery = relayBatchQuery
	StatsQuery      = statsQuery
	RelayGroup      = relayGroup
)

// Claim claims msgs in the inbox inside tx and counts the duplicates, as a
// batch does.
func Claim(c *Consumer, ctx context.Context, tx pgx.Tx, msgs []Message) ([]bool, error) {
	claimed, duplicates, err := c.claim(ctx, tx, msgs)
	if err != nil {
		return nil, err
	}
	return claimed, c.countDuplicates(ctx, tx, duplicates)
}
