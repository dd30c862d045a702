package transport

import (
	"context"
	"sync"

	"github.com/shopmesh/shopmesh/services/order/internal/domain"
)

// Changes wakes the requests that wait for an order to change (GET with
// `Prefer: wait`). It hears only of the changes this process commits, so a
// waiting request also checks the order's revision every recheck: a change
// another replica commits reaches it within that time.
type Changes struct {
	mu       sync.Mutex
	waiting  map[domain.OrderID]*watch
	stopping chan struct{} // closed when the service stops
	stop     sync.Once
}

// watch is the requests waiting on one order: ch closes at its next change.
type watch struct {
	ch chan struct{}
	n  int
}

// NewChanges returns a Changes no request waits on yet.
func NewChanges() *Changes {
	return &Changes{waiting: map[domain.OrderID]*watch{}, stopping: make(chan struct{})}
}

// Run returns when ctx ends, the service's end, and then has every read
// answer at once instead of waiting: a stopping server waits for its
// requests, and it should not wait for long polls.
func (c *Changes) Run(ctx context.Context) error {
	<-ctx.Done()
	c.stop.Do(func() { close(c.stopping) })
	return nil
}

// stopped reports whether the service is stopping.
func (c *Changes) stopped() bool {
	select {
	case <-c.stopping:
		return true
	default:
		return false
	}
}

// Changed tells the requests waiting on order id that it changed. Call it
// once the change has committed, so that what they read again includes it.
func (c *Changes) Changed(id domain.OrderID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w, ok := c.waiting[id]; ok {
		close(w.ch)
		delete(c.waiting, id)
	}
}

// watch returns a channel that closes at order id's next change and the
// release the caller must call when it stops waiting. Watch before reading
// the order: a change that commits after the read then closes the channel.
func (c *Changes) watch(id domain.OrderID) (<-chan struct{}, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.waiting[id]
	if w == nil {
		w = &watch{ch: make(chan struct{})}
		c.waiting[id] = w
	}
	w.n++
	return w.ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if w.n--; w.n == 0 && c.waiting[id] == w {
			delete(c.waiting, id)
		}
	}
}

// watched is how many orders requests wait on.
func (c *Changes) watched() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiting)
}
