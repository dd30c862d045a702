package outbox

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"pgregory.net/rapid"

	"github.com/shopmesh/shopmesh/internal/procfs"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

// fakeChannel settles deliveries as a broker's channel does and records
// every call. It knows which deliveries their workers finished, so it can
// tell an acknowledgement that settles unfinished work (a lost message if the
// consumer then crashed) and one of a tag it no longer holds (which closes a
// real channel).
type fakeChannel struct {
	mu          sync.Mutex
	outstanding map[uint64]bool // delivered, not yet settled
	finished    map[uint64]bool
	calls       []string
	violations  []string
}

func newFakeChannel() *fakeChannel {
	return &fakeChannel{outstanding: map[uint64]bool{}, finished: map[uint64]bool{}}
}

func (f *fakeChannel) deliver(w *ackWindow, tag uint64) {
	f.mu.Lock()
	f.outstanding[tag] = true
	f.mu.Unlock()
	d := amqp.Delivery{DeliveryTag: tag}
	w.track(&d)
	if d.Acknowledger != w {
		panic("track must make the window the delivery's acknowledger")
	}
}

// finish is what a worker does when it is done: d.Ack(false).
func (f *fakeChannel) finish(w *ackWindow, tag uint64) error {
	f.mu.Lock()
	f.finished[tag] = true
	f.mu.Unlock()
	return w.Ack(tag, false)
}

func (f *fakeChannel) Ack(tag uint64, multiple bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("ack %d multiple=%v", tag, multiple))
	// RabbitMQ looks the tag up even for a multiple ack, and closes the
	// channel when it holds no such delivery.
	if !f.outstanding[tag] {
		f.violations = append(f.violations, fmt.Sprintf("ack of %d, which the channel does not hold", tag))
	}
	if !multiple {
		f.settle(tag)
		return nil
	}
	for t := range f.outstanding {
		if t <= tag {
			f.settle(t)
		}
	}
	return nil
}

func (f *fakeChannel) settle(tag uint64) {
	if !f.finished[tag] {
		f.violations = append(f.violations, fmt.Sprintf("%d settled before its worker finished it", tag))
	}
	delete(f.outstanding, tag)
}

func (f *fakeChannel) Nack(tag uint64, multiple, requeue bool) error {
	panic("not used")
}

func (f *fakeChannel) Reject(tag uint64, requeue bool) error { panic("not used") }

func (f *fakeChannel) snapshot() (calls, violations []string, outstanding []uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for t := range f.outstanding {
		outstanding = append(outstanding, t)
	}
	slices.Sort(outstanding)
	return slices.Clone(f.calls), slices.Clone(f.violations), outstanding
}

// Whatever order workers finish in, every delivery is settled exactly when
// its worker finished it or later, never before, and a finished prefix goes
// in one acknowledgement.
func TestAckWindowSettlesWhatIsFinishedOnly(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		ch := newFakeChannel()
		w := newAckWindow(ch, time.Hour) // strays are settled by the test's action only
		defer w.stop()
		var next uint64 = 1
		var unfinished []uint64
		rt.Repeat(map[string]func(*rapid.T){
			"deliver": func(rt *rapid.T) {
				ch.deliver(w, next)
				unfinished = append(unfinished, next)
				next++
			},
			"finish": func(rt *rapid.T) {
				if len(unfinished) == 0 {
					rt.Skip("nothing delivered")
				}
				i := rapid.IntRange(0, len(unfinished)-1).Draw(rt, "which")
				tag := unfinished[i]
				unfinished = slices.Delete(unfinished, i, i+1)
				if err := ch.finish(w, tag); err != nil {
					rt.Fatalf("finish %d: %v", tag, err)
				}
			},
			"strays due": func(rt *rapid.T) { w.ackStrays() },
			"": func(rt *rapid.T) {
				_, violations, outstanding := ch.snapshot()
				if len(violations) > 0 {
					rt.Fatalf("violations: %v", violations)
				}
				// Settled so far: nothing unfinished.
				for _, u := range unfinished {
					if !slices.Contains(outstanding, u) {
						rt.Fatalf("unfinished %d was settled", u)
					}
				}
			},
		})
		for _, tag := range unfinished {
			if err := ch.finish(w, tag); err != nil {
				rt.Fatalf("finish %d: %v", tag, err)
			}
		}
		w.flush()
		calls, violations, outstanding := ch.snapshot()
		if len(violations) > 0 || len(outstanding) > 0 {
			rt.Fatalf("after every delivery finished: violations %v, still outstanding %v; calls %v", violations, outstanding, calls)
		}
	})
}

func TestAckWindowCoalescesAFinishedPrefix(t *testing.T) {
	ch := newFakeChannel()
	w := newAckWindow(ch, time.Hour)
	defer w.stop()
	for tag := uint64(1); tag <= 16; tag++ {
		ch.deliver(w, tag)
	}
	// Workers finish 2..16 first; 1 holds them all back, then settles them in one.
	for tag := uint64(2); tag <= 16; tag++ {
		if err := ch.finish(w, tag); err != nil {
			t.Fatal(err)
		}
	}
	if calls, _, _ := ch.snapshot(); len(calls) != 0 {
		t.Fatalf("acknowledged before the prefix was finished: %v", calls)
	}
	if err := ch.finish(w, 1); err != nil {
		t.Fatal(err)
	}
	calls, violations, outstanding := ch.snapshot()
	if want := []string{"ack 16 multiple=true"}; !slices.Equal(calls, want) || len(violations) > 0 || len(outstanding) > 0 {
		t.Fatalf("calls %v (want %v), violations %v, outstanding %v", calls, want, violations, outstanding)
	}
	// A lone delivery finished in order is settled at once.
	ch.deliver(w, 17)
	if err := ch.finish(w, 17); err != nil {
		t.Fatal(err)
	}
	if calls, _, _ := ch.snapshot(); calls[len(calls)-1] != "ack 17 multiple=true" {
		t.Fatalf("calls %v, want the last to settle 17", calls)
	}
}

// A delivery finished behind an unfinished one is settled on its own after
// the stray delay, so a slow aggregate does not hold the others in the
// prefetch window; when the slow one finishes, it is settled without
// settling the stray again.
func TestAckWindowSettlesStraysAfterTheirDelay(t *testing.T) {
	ch := newFakeChannel()
	w := newAckWindow(ch, 20*time.Millisecond)
	defer w.stop()
	for tag := uint64(1); tag <= 3; tag++ {
		ch.deliver(w, tag)
	}
	for _, tag := range []uint64{2, 3} {
		if err := ch.finish(w, tag); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, outstanding := ch.snapshot()
		if slices.Equal(outstanding, []uint64{1}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("strays 2 and 3 not settled within 5s: outstanding %v", outstanding)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := ch.finish(w, 1); err != nil {
		t.Fatal(err)
	}
	calls, violations, outstanding := ch.snapshot()
	want := []string{"ack 2 multiple=false", "ack 3 multiple=false", "ack 1 multiple=true"}
	if !slices.Equal(calls, want) || len(violations) > 0 || len(outstanding) > 0 {
		t.Fatalf("calls %v (want %v), violations %v, outstanding %v", calls, want, violations, outstanding)
	}
}

// BenchmarkConsumerAcks compares, on the broker, what a quorum queue's
// consumer costs with each delivery acknowledged on its own and through the
// ack window, side by side in one run. Four workers take deliveries
// partitioned as the consumer does, and finish batches of up to 16 after
// 1 ms of work each (a transaction's worth). It reports the broker's CPU per
// message for both and their ratio. Run it with
//
//	go test ./outbox -run '^$' -bench ConsumerAcks
func BenchmarkConsumerAcks(b *testing.B) {
	url := testenv.NewVHost(b)
	pid, err := testenv.Management(b).NodePID()
	if err != nil {
		b.Fatalf("the broker's CPU cannot be read: %v", err)
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	pub, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	const queue, messages = "bench.acks", 8192
	if _, err := pub.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		b.Fatal(err)
	}
	if err := pub.Confirm(false); err != nil {
		b.Fatal(err)
	}
	confirms := pub.NotifyPublish(make(chan amqp.Confirmation, 256))
	fill := func() {
		body := make([]byte, 512)
		for sent := 0; sent < messages; sent += 256 {
			for range 256 {
				if err := pub.Publish("", queue, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body}); err != nil {
					b.Fatal(err)
				}
			}
			for range 256 {
				if c := receive(b, confirms, "a publisher confirm"); !c.Ack {
					b.Fatal("publish nacked")
				}
			}
		}
	}
	brokerCPU := func() time.Duration {
		st, err := procfs.ReadStat(pid)
		if err != nil {
			b.Fatal(err)
		}
		return st.CPU()
	}
	var sent int64 // acknowledgements the window sent
	consume := func(window bool) time.Duration {
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		defer ch.Close()
		closed := ch.NotifyClose(make(chan *amqp.Error, 1))
		defer func() {
			select {
			case err := <-closed:
				if err != nil {
					b.Errorf("channel closed: %v", err)
				}
			default:
			}
		}()
		if err := ch.Qos(64, 0, false); err != nil {
			b.Fatal(err)
		}
		before := brokerCPU()
		deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		counted := &countingAcks{Acknowledger: ch}
		acks := newAckWindow(counted, strayDelay)
		defer acks.stop()
		var wg sync.WaitGroup
		inputs := make([]chan amqp.Delivery, 4)
		for i := range inputs {
			inputs[i] = make(chan amqp.Delivery, 64)
			wg.Go(func() {
				for d := range inputs[i] {
					batch := gather(context.Background(), []amqp.Delivery{d}, inputs[i], 16, 0)
					time.Sleep(time.Millisecond)
					for _, d := range batch {
						if err := d.Ack(false); err != nil {
							b.Error(err)
						}
					}
				}
			})
		}
		for range messages {
			d := receive(b, deliveries, "a delivery")
			if window {
				acks.track(&d)
			}
			inputs[d.DeliveryTag%4] <- d
		}
		for _, in := range inputs {
			close(in)
		}
		wg.Wait()
		acks.flush()
		if window {
			sent += counted.n.Load()
		}
		return brokerCPU() - before
	}
	var each, window time.Duration
	for b.Loop() {
		fill()
		each += consume(false)
		fill()
		window += consume(true)
	}
	perMessage := func(d time.Duration) float64 {
		return float64(d) / float64(time.Microsecond) / float64(b.N*messages)
	}
	b.ReportMetric(perMessage(each), "broker-us/msg-each")
	b.ReportMetric(perMessage(window), "broker-us/msg-window")
	b.ReportMetric(float64(window)/float64(each), "window/each")
	b.ReportMetric(float64(sent)/float64(b.N*messages), "window-acks/msg")
}

// receive takes the next value from c, failing b when c closes or stays
// empty for 30 s.
func receive[T any](b *testing.B, c <-chan T, what string) T {
	b.Helper()
	select {
	case v, ok := <-c:
		if !ok {
			b.Fatalf("waiting for %s: the channel closed", what)
		}
		return v
	case <-time.After(30 * time.Second):
		b.Fatalf("waiting for %s: nothing within 30s", what)
	}
	panic("unreachable")
}

// countingAcks counts the acknowledgements sent through it.
type countingAcks struct {
	amqp.Acknowledger
	n atomic.Int64
}

func (c *countingAcks) Ack(tag uint64, multiple bool) error {
	c.n.Add(1)
	return c.Acknowledger.Ack(tag, multiple)
}
