package outbox

import (
	"net"
	"sync"
)

// batchConn is a publisher's broker connection whose writes can be
// batched. The AMQP client flushes every publish on its own: a write
// system call each, and on the broker's side a socket read and a wake-up of
// the connection's reader each. Between hold and release, what the client
// writes is kept instead and then sent in one write (or one per
// maxHeldWrites bytes), so a relay's batch reaches the broker as one stream
// of frames. Publishing never blocks on the socket while held; release
// does, as each publish did before.
//
// Only a connection whose publishes are followed by release may hold: a
// relay's or an operator's confirm channel, which waits for the confirms
// of what it sent. Other writes on the connection (heartbeats, channel
// methods) are held with the batch, for the microseconds it takes.
type batchConn struct {
	net.Conn

	mu      sync.Mutex
	holding bool
	held    []byte
}

// maxHeldWrites bounds what is held: a larger batch leaves in writes of
// about this size, as it is published.
const maxHeldWrites = 64 << 10

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.holding {
		return c.Conn.Write(p)
	}
	c.held = append(c.held, p...)
	if len(c.held) >= maxHeldWrites {
		if err := c.sendHeld(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// hold starts holding writes back.
func (c *batchConn) hold() {
	c.mu.Lock()
	c.holding = true
	c.mu.Unlock()
}

// release sends what was held since hold and writes through again.
// An error is the connection's: what was held may not have reached the
// broker, so the caller must treat the connection as lost.
func (c *batchConn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding = false
	return c.sendHeld()
}

// sendHeld writes what is held. Callers hold mu.
func (c *batchConn) sendHeld() error {
	if len(c.held) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.held)
	if cap(c.held) > 2*maxHeldWrites {
		c.held = nil // a burst's buffer is not kept for the quiet after it
	} else {
		c.held = c.held[:0]
	}
	return err
}
