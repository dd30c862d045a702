package gateway

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a token bucket per client. Buckets idle longer than idle are
// dropped by a sweep that runs at most once per idle period, during a
// request, so memory stays bounded by the clients seen recently without a
// background goroutine.
type limiter struct {
	limit rate.Limit
	burst int
	idle  time.Duration

	mu        sync.Mutex
	clients   map[string]*client
	lastSweep time.Time
}

type client struct {
	bucket   *rate.Limiter
	lastSeen time.Time
}

func newLimiter(perSecond float64, burst int, idle time.Duration) *limiter {
	return &limiter{limit: rate.Limit(perSecond), burst: burst, idle: idle, clients: map[string]*client{}}
}

// allow takes one token from key's bucket at now. When none is left it
// reports how long until one will be.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= l.idle {
		for k, c := range l.clients {
			if now.Sub(c.lastSeen) >= l.idle {
				delete(l.clients, k)
			}
		}
		l.lastSweep = now
	}
	c := l.clients[key]
	if c == nil {
		c = &client{bucket: rate.NewLimiter(l.limit, l.burst)}
		l.clients[key] = c
	}
	c.lastSeen = now
	if c.bucket.AllowN(now, 1) {
		return true, 0
	}
	r := c.bucket.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	wait := r.DelayFrom(now)
	r.CancelAt(now) // only asked how long; the token is not taken
	return false, max(wait, time.Second)
}
