package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/internal/procfs"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

// recordingConn records every write that reaches it; err, when set, fails
// them.
type recordingConn struct {
	net.Conn
	writes [][]byte
	err    error
}

func (c *recordingConn) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func TestABatchConnSendsWhatItHeldInOneWrite(t *testing.T) {
	rec := &recordingConn{}
	c := &batchConn{Conn: rec}
	write := func(s string) {
		t.Helper()
		if n, err := c.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("write %q: %d, %v", s, n, err)
		}
	}
	write("a")
	if len(rec.writes) != 1 {
		t.Fatalf("a write while not holding: %d writes reached the connection, want 1", len(rec.writes))
	}
	c.hold()
	write("b")
	write("cd")
	write("e")
	if len(rec.writes) != 1 {
		t.Fatalf("writes while holding reached the connection: %q", rec.writes[1:])
	}
	if err := c.release(); err != nil {
		t.Fatal(err)
	}
	if len(rec.writes) != 2 || string(rec.writes[1]) != "bcde" {
		t.Fatalf("after release the connection got %q, want one write of \"bcde\" after \"a\"", rec.writes)
	}
	if err := c.release(); err != nil || len(rec.writes) != 2 {
		t.Fatalf("a release with nothing held: %v, %d writes", err, len(rec.writes))
	}
	write("f")
	if len(rec.writes) != 3 || string(rec.writes[2]) != "f" {
		t.Fatalf("after release writes go through again: got %q", rec.writes)
	}
}

func TestABatchConnSendsALargeBatchInBoundedWrites(t *testing.T) {
	rec := &recordingConn{}
	c := &batchConn{Conn: rec}
	var want []byte
	c.hold()
	for i := 0; len(want) < 5*maxHeldWrites; i++ {
		p := bytes.Repeat([]byte{byte(i)}, 1000+i%7)
		want = append(want, p...)
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.release(); err != nil {
		t.Fatal(err)
	}
	if got := bytes.Join(rec.writes, nil); !bytes.Equal(got, want) {
		t.Fatalf("the connection got %d bytes, not the %d written in order", len(got), len(want))
	}
	for i, w := range rec.writes {
		if len(w) > maxHeldWrites+1006 {
			t.Fatalf("write %d carried %d bytes, more than the %d held at most", i, len(w), maxHeldWrites)
		}
	}
	if n := len(rec.writes); n < 5 || n > 6 {
		t.Fatalf("%d bytes left in %d writes, want 5 or 6 of about %d", len(want), n, maxHeldWrites)
	}
}

func TestABatchConnReportsAFailedSend(t *testing.T) {
	broken := errors.New("connection reset")
	rec := &recordingConn{}
	c := &batchConn{Conn: rec}
	c.hold()
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatalf("a held write failed before it was sent: %v", err)
	}
	rec.err = broken
	if err := c.release(); !errors.Is(err, broken) {
		t.Fatalf("release: %v, want the connection's error", err)
	}
	c.hold()
	if _, err := c.Write(make([]byte, maxHeldWrites)); !errors.Is(err, broken) {
		t.Fatalf("a write that fills the batch: %v, want the connection's error", err)
	}
}

// countingConn counts the writes that reach a real connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// publisherTo opens a broker connection to url whose writes are counted,
// and on it a confirm channel that batches its writes or not.
func publisherTo(t testing.TB, url string, batch bool) (*confirmChannel, *countingConn) {
	t.Helper()
	var counted *countingConn
	dial := func(network, addr string) (net.Conn, error) {
		conn, err := amqp.DefaultDial(5*time.Second)(network, addr)
		if err != nil {
			return nil, err
		}
		counted = &countingConn{Conn: conn}
		return counted, nil
	}
	var out *batchConn
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: batchingDial(dial, &out)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if !batch {
		out = nil // the channel sends each publish alone
	}
	cc, err := newConfirmChannel(conn, out, 64)
	if err != nil {
		t.Fatal(err)
	}
	return cc, counted
}

// A relay's batch reaches the broker in one write instead of one per
// publish, and the broker takes it whole: every message confirmed, routed
// and queued in order.
func TestARelayBatchReachesTheBrokerInOneWrite(t *testing.T) {
	url := testenv.NewVHost(t)
	const queue, n = "batched", 16
	for _, batch := range []bool{false, true} {
		cc, counted := publisherTo(t, url, batch)
		if _, err := cc.ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
			t.Fatal(err)
		}
		keys, msgs := make([]string, n), make([]amqp.Publishing, n)
		for i := range msgs {
			keys[i] = queue
			msgs[i] = amqp.Publishing{MessageId: fmt.Sprint(i), DeliveryMode: amqp.Persistent, Body: []byte(fmt.Sprintf("message %d", i))}
		}
		before := counted.writes.Load()
		first, _, err := cc.publish(context.Background(), "", keys, msgs, 30*time.Second)
		if err != nil || first != -1 {
			t.Fatalf("batch %v: publish: %v, first unroutable %d", batch, err, first)
		}
		writes := counted.writes.Load() - before
		if batch && writes != 1 {
			t.Fatalf("a batched channel sent %d publishes in %d writes, want 1", n, writes)
		}
		if !batch && writes < n {
			t.Fatalf("a channel without batching sent %d publishes in %d writes: the comparison is void", n, writes)
		}
		for i := range n {
			d, ok, err := cc.ch.Get(queue, true)
			if err != nil || !ok {
				t.Fatalf("batch %v: message %d not queued: %v", batch, i, err)
			}
			if want := fmt.Sprintf("message %d", i); string(d.Body) != want || d.MessageId != fmt.Sprint(i) {
				t.Fatalf("batch %v: queued %q (%s) at %d, want %q", batch, d.Body, d.MessageId, i, want)
			}
		}
	}
}

// BenchmarkRelayPublish compares, side by side, what publishing a relay's
// batch of 16 persistent messages to a quorum queue with confirms costs
// when each publish is its own write (as the AMQP client sends it) and when
// the batch leaves in one write: the publishing process's CPU and the
// broker's, per message, and the time per batch.
func BenchmarkRelayPublish(b *testing.B) {
	url := testenv.NewVHost(b)
	pid, err := testenv.Management(b).NodePID()
	if err != nil {
		b.Fatalf("the broker's CPU cannot be read: %v", err)
	}
	const queue, size, batches = "bench.publish", 16, 64
	each, _ := publisherTo(b, url, false)
	batched, _ := publisherTo(b, url, true)
	if _, err := each.ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		b.Fatal(err)
	}
	keys, msgs := make([]string, size), make([]amqp.Publishing, size)
	for i := range msgs {
		keys[i] = queue
		msgs[i] = amqp.Publishing{DeliveryMode: amqp.Persistent, Body: make([]byte, 512)}
	}
	cpu := func() (self, broker time.Duration) {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		st, err := procfs.ReadStat(pid)
		if err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), st.CPU()
	}
	type cost struct{ self, broker, wall time.Duration }
	run := func(cc *confirmChannel, c *cost) {
		self, broker := cpu()
		start := time.Now()
		for range batches {
			if _, _, err := cc.publish(context.Background(), "", keys, msgs, 30*time.Second); err != nil {
				b.Fatal(err)
			}
		}
		c.wall += time.Since(start)
		s, br := cpu()
		c.self += s - self
		c.broker += br - broker
		if _, err := cc.ch.QueuePurge(queue, false); err != nil {
			b.Fatal(err)
		}
	}
	var one, many cost
	for b.Loop() {
		run(each, &one)
		run(batched, &many)
	}
	messages := float64(b.N * batches * size)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / messages }
	b.ReportMetric(us(one.self), "self-us/msg-each")
	b.ReportMetric(us(many.self), "self-us/msg-batched")
	b.ReportMetric(us(one.broker), "broker-us/msg-each")
	b.ReportMetric(us(many.broker), "broker-us/msg-batched")
	b.ReportMetric(float64(many.self+many.broker)/float64(one.self+one.broker), "cpu-batched/each")
	b.ReportMetric(float64(many.wall)/float64(one.wall), "time-batched/each")
}
