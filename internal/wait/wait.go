// Package wait holds the two ways shopmesh code waits: a pause that ends
// with its context, and a poll with an interval, both bounded by the
// context they are given.
package wait

import (
	"context"
	"fmt"
	"time"
)

// Sleep waits d (nothing when d <= 0) or until ctx ends, and returns ctx's
// error if it ended.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Poll calls cond every interval until it reports done, fails, or ctx
// ends; what names the wait in the error.
func Poll(ctx context.Context, interval time.Duration, what string, cond func(ctx context.Context) (bool, error)) error {
	for {
		done, err := cond(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if done {
			return nil
		}
		if err := Sleep(ctx, interval); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
}
