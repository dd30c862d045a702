package wait_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/internal/wait"
)

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := wait.Sleep(ctx, time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep() = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Sleep took %s after ctx ended", d)
	}
	if err := wait.Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Sleep() = %v, want nil", err)
	}
}

func TestPollStopsWhenDoneFailedOrOutOfTime(t *testing.T) {
	ctx := context.Background()
	calls := 0
	err := wait.Poll(ctx, time.Millisecond, "third call", func(context.Context) (bool, error) { calls++; return calls == 3, nil })
	if err != nil || calls != 3 {
		t.Errorf("Poll() = %v after %d calls, want nil after 3", err, calls)
	}
	boom := errors.New("boom")
	if err := wait.Poll(ctx, time.Millisecond, "failing", func(context.Context) (bool, error) { return false, boom }); !errors.Is(err, boom) {
		t.Errorf("Poll() = %v, want boom", err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := wait.Poll(short, time.Millisecond, "never", func(context.Context) (bool, error) { return false, nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Poll() = %v, want the deadline", err)
	}
}
