package outbox

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// gathered runs gather in the background and returns its batch, failing the
// test when it has not returned within limit.
func gathered(t *testing.T, ctx context.Context, in chan amqp.Delivery, max int, linger, limit time.Duration) []amqp.Delivery {
	t.Helper()
	done := make(chan []amqp.Delivery, 1)
	go func() { done <- gather(ctx, []amqp.Delivery{{DeliveryTag: 1}}, in, max, linger) }()
	select {
	case batch := <-done:
		return batch
	case <-time.After(limit):
		t.Fatalf("gather did not return within %v", limit)
		return nil
	}
}

func tags(batch []amqp.Delivery) []uint64 {
	out := make([]uint64, len(batch))
	for i, d := range batch {
		out[i] = d.DeliveryTag
	}
	return out
}

func sameTags(t *testing.T, batch []amqp.Delivery, want ...uint64) {
	t.Helper()
	got := tags(batch)
	if len(got) != len(want) {
		t.Fatalf("batch %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("batch %v, want %v", got, want)
		}
	}
}

func TestGatherWithoutLingerTakesOnlyWhatHasQueued(t *testing.T) {
	in := make(chan amqp.Delivery, 8)
	in <- amqp.Delivery{DeliveryTag: 2}
	in <- amqp.Delivery{DeliveryTag: 3}
	sameTags(t, gathered(t, context.Background(), in, 8, 0, 10*time.Second), 1, 2, 3)

	in <- amqp.Delivery{DeliveryTag: 2}
	in <- amqp.Delivery{DeliveryTag: 3}
	in <- amqp.Delivery{DeliveryTag: 4}
	sameTags(t, gathered(t, context.Background(), in, 3, 0, 10*time.Second), 1, 2, 3)
	sameTags(t, gathered(t, context.Background(), in, 3, 0, 10*time.Second), 1, 4)
}

// A lingering worker takes what arrives while it waits, and starts as soon
// as the batch is full: the linger here is an hour.
func TestGatherLingersUntilTheBatchIsFull(t *testing.T) {
	in := make(chan amqp.Delivery)
	go func() {
		for tag := uint64(2); tag <= 5; tag++ {
			time.Sleep(10 * time.Millisecond)
			in <- amqp.Delivery{DeliveryTag: tag}
		}
	}()
	sameTags(t, gathered(t, context.Background(), in, 4, time.Hour, 10*time.Second), 1, 2, 3, 4)
	sameTags(t, gathered(t, context.Background(), in, 1, time.Hour, 10*time.Second), 1)
	sameTags(t, gathered(t, context.Background(), in, 2, time.Hour, 10*time.Second), 1, 5)
}

// The wait ends after the linger with what has come, when the input closes
// (the session ends) and when ctx ends.
func TestGatherStopsLingering(t *testing.T) {
	t.Run("linger over", func(t *testing.T) {
		in := make(chan amqp.Delivery, 1)
		in <- amqp.Delivery{DeliveryTag: 2}
		sameTags(t, gathered(t, context.Background(), in, 8, 50*time.Millisecond, 10*time.Second), 1, 2)
	})
	t.Run("input closed", func(t *testing.T) {
		in := make(chan amqp.Delivery, 1)
		in <- amqp.Delivery{DeliveryTag: 2}
		close(in)
		sameTags(t, gathered(t, context.Background(), in, 8, time.Hour, 10*time.Second), 1, 2)
		in2 := make(chan amqp.Delivery)
		go func() { time.Sleep(10 * time.Millisecond); close(in2) }()
		sameTags(t, gathered(t, context.Background(), in2, 8, time.Hour, 10*time.Second), 1)
	})
	t.Run("context ended", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(10 * time.Millisecond); cancel() }()
		sameTags(t, gathered(t, ctx, make(chan amqp.Delivery), 8, time.Hour, 10*time.Second), 1)
	})
}
