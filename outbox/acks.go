package outbox

import (
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ackWindow coalesces the acknowledgements of one consumer channel. Workers
// finish deliveries out of order (they are partitioned by aggregate), while
// the broker's cheapest acknowledgement, multiple=true, settles every
// delivery of the channel up to a tag. So the window acknowledges the
// longest finished prefix of the channel's deliveries with one multiple ack,
// and a delivery finished beyond that prefix on its own once it has waited
// strayDelay: a worker slow on one aggregate then never keeps the other
// workers' finished messages in the prefetch window for long. On a quorum
// queue the broker spends about half as much CPU per message acknowledged
// sixteen at a time as one by one (BenchmarkConsumerAcks).
//
// It stands in for the channel as the deliveries' Acknowledger, so the code
// that finishes a delivery calls d.Ack(false) as it would on the channel.
type ackWindow struct {
	ch    amqp.Acknowledger
	delay time.Duration

	mu      sync.Mutex
	order   []*ackEntry // tracked deliveries in tag order; order[0] is the oldest unacknowledged
	byTag   map[uint64]*ackEntry
	timer   *time.Timer // fires ackStrays; nil while not armed
	stopped bool
}

type ackEntry struct {
	tag      uint64
	finished bool // its worker is done with it: it may be acknowledged
	settled  bool // already acknowledged (or rejected) on its own
}

// strayDelay is how long a delivery finished beyond the finished prefix
// waits for the prefix to reach it before it is acknowledged on its own.
const strayDelay = 10 * time.Millisecond

func newAckWindow(ch amqp.Acknowledger, delay time.Duration) *ackWindow {
	return &ackWindow{ch: ch, delay: delay, byTag: map[uint64]*ackEntry{}}
}

// track registers d, which must be the channel's next delivery, and makes
// the window its Acknowledger.
func (w *ackWindow) track(d *amqp.Delivery) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := &ackEntry{tag: d.DeliveryTag}
	w.order = append(w.order, e)
	w.byTag[e.tag] = e
	d.Acknowledger = w
}

// Ack finishes tag (with multiple, every tracked tag up to it) and
// acknowledges what that completes. The error is the channel's, when an
// acknowledgement was sent and failed.
func (w *ackWindow) Ack(tag uint64, multiple bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if multiple {
		for _, e := range w.order {
			if e.tag > tag {
				break
			}
			e.finished = true
		}
	} else if e, ok := w.byTag[tag]; ok {
		e.finished = true
	} else {
		return w.ch.Ack(tag, false) // not tracked: the channel decides
	}
	return w.advance()
}

// Nack and Reject settle the delivery at once on the channel; the window
// then treats it as finished.
func (w *ackWindow) Nack(tag uint64, multiple, requeue bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.ch.Nack(tag, multiple, requeue); err != nil {
		return err
	}
	for _, e := range w.order {
		if e.tag == tag || (multiple && e.tag < tag) {
			e.finished, e.settled = true, true
		}
	}
	return w.advance()
}

func (w *ackWindow) Reject(tag uint64, requeue bool) error { return w.Nack(tag, false, requeue) }

// advance acknowledges the finished prefix with one multiple ack and arms
// the stray timer when finished deliveries remain behind an unfinished one.
// The ack names the prefix's last delivery not yet acknowledged on its own:
// the broker looks that tag up (an unknown one closes the channel), and
// settles every delivery before it. Callers hold mu.
func (w *ackWindow) advance() error {
	n, last := 0, uint64(0)
	for n < len(w.order) && w.order[n].finished {
		if !w.order[n].settled {
			last = w.order[n].tag
		}
		delete(w.byTag, w.order[n].tag)
		n++
	}
	w.order = w.order[n:]
	var err error
	if last != 0 && !w.stopped {
		err = w.ch.Ack(last, true)
	}
	if w.timer == nil && !w.stopped && w.hasStrays() {
		w.timer = time.AfterFunc(w.delay, w.ackStrays)
	}
	return err
}

func (w *ackWindow) hasStrays() bool {
	for _, e := range w.order {
		if e.finished && !e.settled {
			return true
		}
	}
	return false
}

// ackStrays is the stray timer's: it acknowledges the strays.
func (w *ackWindow) ackStrays() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	w.settleStrays()
}

// flush acknowledges the strays now, as a session that ends does before it
// closes its channel.
func (w *ackWindow) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.settleStrays()
}

// settleStrays acknowledges, one by one, the finished deliveries that the
// finished prefix has not reached. An error means the channel is gone: the
// broker redelivers them, and the inbox absorbs the copies. Callers hold mu.
func (w *ackWindow) settleStrays() {
	if w.stopped {
		return
	}
	for _, e := range w.order {
		if e.finished && !e.settled {
			if w.ch.Ack(e.tag, false) != nil {
				return
			}
			e.settled = true
		}
	}
}

// stop ends the window with its channel: nothing more is sent.
func (w *ackWindow) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
}
