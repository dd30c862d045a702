package transport

import (
	"context"
	"log/slog"
	"time"
)

// Advancer takes the carrier's due steps.
type Advancer interface {
	AdvanceDue(ctx context.Context, limit int) (int, error)
}

// CarrierLoop returns the background component that drives the carrier: it
// polls for due shipments every interval and advances up to batch at a
// time, at once again while full batches keep coming. The schedule lives in
// the database (each shipment's due time), so a restart loses no step and
// an overdue step runs at the first poll. Failures are logged and retried
// at the next poll; the loop ends only with ctx.
func CarrierLoop(a Advancer, interval time.Duration, batch int, logger *slog.Logger) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTimer(0)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
			n, err := a.AdvanceDue(ctx, batch)
			if err != nil && ctx.Err() == nil {
				logger.Warn("carrier step failed; retrying at the next poll", "advanced", n, "err", err)
			}
			if err == nil && n == batch {
				t.Reset(0)
				continue
			}
			t.Reset(interval)
		}
	}
}
