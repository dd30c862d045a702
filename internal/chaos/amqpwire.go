package chaos

import (
	"encoding/binary"
	"strings"
)

// AMQP 0-9-1 wire reading, just enough to observe a connection: who it is
// (connection_name), what is published and delivered (routing key, message
// id, redelivered flag) and what is confirmed. A stream it cannot read is
// passed through untouched and no longer observed.

const (
	frameMethod    = 1
	frameHeader    = 2
	frameEnd       = 0xCE
	maxAMQPFrame   = 16 << 20
	amqpHeaderSize = 8 // "AMQP" 0 0 9 1
)

type amqpEventKind int

const (
	evConnectionName amqpEventKind = iota // client properties seen (upstream)
	evPublish                             // Basic.Publish with its message id (upstream)
	evConsumerAck                         // Basic.Ack from a consumer (upstream)
	evDeliver                             // Basic.Deliver with its message id (downstream)
	evConfirm                             // Basic.Ack from the broker: a publisher confirm (downstream)
	evNack                                // Basic.Nack from the broker (downstream)
	evConsumeOk                           // the connection consumes (downstream)
	evSelectOk                            // the connection publishes with confirms (downstream)
)

type amqpEvent struct {
	kind        amqpEventKind
	channel     uint16
	routingKey  string
	messageID   string
	redelivered bool
	name        string
	// burst marks a publish that follows the connection's previous one
	// closely: the relay is in the middle of a batch.
	burst bool
}

// amqpParser reads one direction of one connection.
type amqpParser struct {
	upstream bool
	buf      []byte
	started  bool
	broken   bool
	// pending holds the Publish or Deliver of a channel until its content
	// header, which carries the message id, arrives.
	pending map[uint16]amqpEvent
}

func newAMQPParser(upstream bool) *amqpParser {
	return &amqpParser{upstream: upstream, pending: map[uint16]amqpEvent{}}
}

// feed consumes a chunk of the stream and returns what it completed.
func (p *amqpParser) feed(data []byte) []amqpEvent {
	if p.broken {
		return nil
	}
	p.buf = append(p.buf, data...)
	var out []amqpEvent
	if p.upstream && !p.started {
		if len(p.buf) < amqpHeaderSize {
			return nil
		}
		if string(p.buf[:4]) != "AMQP" {
			p.fail()
			return nil
		}
		p.buf = p.buf[amqpHeaderSize:]
		p.started = true
	}
	for len(p.buf) >= 7 {
		typ := p.buf[0]
		channel := binary.BigEndian.Uint16(p.buf[1:3])
		size := binary.BigEndian.Uint32(p.buf[3:7])
		if size > maxAMQPFrame {
			p.fail()
			return out
		}
		total := 7 + int(size) + 1
		if len(p.buf) < total {
			break
		}
		if p.buf[total-1] != frameEnd {
			p.fail()
			return out
		}
		payload := p.buf[7 : 7+int(size)]
		switch typ {
		case frameMethod:
			if ev, ok := p.method(channel, payload); ok {
				out = append(out, ev)
			}
		case frameHeader:
			if ev, ok := p.pending[channel]; ok {
				delete(p.pending, channel)
				ev.messageID = messageIDOf(payload)
				out = append(out, ev)
			}
		}
		p.buf = p.buf[total:]
	}
	if len(p.buf) == 0 {
		p.buf = nil // let a large consumed buffer go
	}
	return out
}

func (p *amqpParser) fail() {
	p.broken = true
	p.buf = nil
	p.pending = nil
}

// method decodes the methods the harness observes; ok is false for the rest
// and for Publish/Deliver, which complete with their content header.
func (p *amqpParser) method(channel uint16, b []byte) (amqpEvent, bool) {
	if len(b) < 4 {
		return amqpEvent{}, false
	}
	class, method := binary.BigEndian.Uint16(b[0:2]), binary.BigEndian.Uint16(b[2:4])
	r := &wireReader{b: b[4:]}
	ev := amqpEvent{channel: channel}
	switch {
	case class == 10 && method == 11 && p.upstream: // Connection.StartOk
		ev.kind, ev.name = evConnectionName, tableString(r.longBytes(), "connection_name")
		return ev, !r.bad
	case class == 60 && method == 40 && p.upstream: // Basic.Publish
		r.skip(2)
		r.shortString() // exchange
		ev.kind, ev.routingKey = evPublish, r.shortString()
		if !r.bad {
			p.pending[channel] = ev
		}
		return ev, false
	case class == 60 && method == 60 && !p.upstream: // Basic.Deliver
		r.shortString() // consumer tag
		r.skip(8)       // delivery tag
		ev.redelivered = r.octet()&1 == 1
		r.shortString() // exchange
		ev.kind, ev.routingKey = evDeliver, r.shortString()
		if !r.bad {
			p.pending[channel] = ev
		}
		return ev, false
	case class == 60 && method == 80:
		if p.upstream {
			ev.kind = evConsumerAck
		} else {
			ev.kind = evConfirm
		}
		return ev, true
	case class == 60 && method == 120 && !p.upstream:
		ev.kind = evNack
		return ev, true
	case class == 60 && method == 21 && !p.upstream:
		ev.kind = evConsumeOk
		return ev, true
	case class == 85 && method == 11 && !p.upstream:
		ev.kind = evSelectOk
		return ev, true
	}
	return amqpEvent{}, false
}

// messageIDOf reads the message-id property of a content header payload.
func messageIDOf(b []byte) string {
	r := &wireReader{b: b}
	r.skip(2 + 2 + 8) // class, weight, body size
	flags := r.short()
	for f := flags; f&1 == 1 && !r.bad; f = r.short() {
		// continuation flag words: none are defined in 0-9-1
	}
	for bit := 15; bit >= 7 && !r.bad; bit-- {
		if flags&(1<<bit) == 0 {
			continue
		}
		switch bit {
		case 13: // headers
			r.longBytes()
		case 12, 11: // delivery mode, priority
			r.skip(1)
		case 7:
			return r.shortString()
		default: // content type, encoding, correlation id, reply to, expiration
			r.shortString()
		}
	}
	return ""
}

// tableString returns the long-string value of key in an AMQP field table.
func tableString(table []byte, key string) string {
	r := &wireReader{b: table}
	for len(r.b) > 0 && !r.bad {
		k := r.shortString()
		t := r.octet()
		switch t {
		case 'S':
			v := r.longBytes()
			if k == key {
				return string(v)
			}
		case 't', 'b', 'B':
			r.skip(1)
		case 's', 'u':
			r.skip(2)
		case 'I', 'i', 'f':
			r.skip(4)
		case 'l', 'L', 'd', 'T':
			r.skip(8)
		case 'D':
			r.skip(5)
		case 'F', 'A', 'x':
			r.longBytes()
		case 'V':
		default:
			return ""
		}
	}
	return ""
}

// wireReader reads big-endian AMQP fields; after a short read bad is set
// and every further read returns zero values.
type wireReader struct {
	b   []byte
	bad bool
}

func (r *wireReader) skip(n int) {
	if r.bad || len(r.b) < n {
		r.bad = true
		return
	}
	r.b = r.b[n:]
}

func (r *wireReader) octet() byte {
	if r.bad || len(r.b) < 1 {
		r.bad = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *wireReader) short() uint16 {
	if r.bad || len(r.b) < 2 {
		r.bad = true
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *wireReader) shortString() string {
	n := int(r.octet())
	if r.bad || len(r.b) < n {
		r.bad = true
		return ""
	}
	v := string(r.b[:n])
	r.b = r.b[n:]
	return v
}

func (r *wireReader) longBytes() []byte {
	if r.bad || len(r.b) < 4 {
		r.bad = true
		return nil
	}
	n := int(binary.BigEndian.Uint32(r.b))
	r.b = r.b[4:]
	if len(r.b) < n {
		r.bad = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// connectionRole maps the outbox's connection names ("relay:<service>",
// "consumer:<queue>") to the role the harness targets.
func connectionRole(name string) string {
	switch {
	case strings.HasPrefix(name, "relay:"):
		return roleRelay
	case strings.HasPrefix(name, "consumer:"):
		return roleConsumer
	}
	return ""
}

const (
	roleRelay    = "relay"
	roleConsumer = "consumer"
)

// PostgreSQL frontend protocol reading: enough to see which statements a
// transaction runs and when it commits.

type pgEventKind int

const (
	pgCommit      pgEventKind = iota // a COMMIT, sent as a simple query or in a batch
	pgCursorWrite                    // the relay's UPDATE of its cursor (after the broker confirmed)
)

type pgEvent struct {
	kind pgEventKind
	// consumerTx marks a commit of a transaction that claimed an inbox key:
	// a consumer applying a message.
	consumerTx bool
}

type pgParser struct {
	buf     []byte
	started bool
	broken  bool
	stmts   map[string]stmtKind
	inboxTx bool
}

type stmtKind int

const (
	stmtOther stmtKind = iota
	stmtInboxClaim
	stmtCursorWrite
	stmtCommit     // COMMIT as a prepared statement: a consumer's, in the batch with its last writes
	stmtTxBoundary // BEGIN or ROLLBACK as a prepared statement
)

func newPGParser() *pgParser { return &pgParser{stmts: map[string]stmtKind{}} }

func classifySQL(q string) stmtKind {
	s := strings.ToLower(strings.Join(strings.Fields(q), " "))
	switch {
	case strings.HasPrefix(s, "insert into inbox (consumer, message_id"):
		return stmtInboxClaim
	case strings.HasPrefix(s, "update watermill_offsets_outbox"):
		return stmtCursorWrite
	case s == "commit" || s == "end":
		return stmtCommit
	case s == "rollback" || s == "abort" || strings.HasPrefix(s, "begin"):
		return stmtTxBoundary
	}
	return stmtOther
}

// feed consumes a chunk of client-to-server bytes.
func (p *pgParser) feed(data []byte) []pgEvent {
	if p.broken {
		return nil
	}
	p.buf = append(p.buf, data...)
	var out []pgEvent
	for {
		if !p.started {
			if len(p.buf) < 8 {
				return out
			}
			n := int(binary.BigEndian.Uint32(p.buf[0:4]))
			code := binary.BigEndian.Uint32(p.buf[4:8])
			if n < 8 || n > 1<<16 || code == 80877103 || code == 80877104 {
				p.fail() // TLS or GSS encryption: nothing to read
				return out
			}
			if len(p.buf) < n {
				return out
			}
			p.buf = p.buf[n:]
			p.started = true
			continue
		}
		if len(p.buf) < 5 {
			break
		}
		typ := p.buf[0]
		n := int(binary.BigEndian.Uint32(p.buf[1:5]))
		if n < 4 || n > 64<<20 {
			p.fail()
			return out
		}
		if len(p.buf) < 1+n {
			break
		}
		body := p.buf[5 : 1+n]
		switch typ {
		case 'Q':
			q := strings.ToLower(strings.TrimSpace(strings.TrimRight(cstring(body), "; ")))
			switch q {
			case "commit", "end":
				out = append(out, pgEvent{kind: pgCommit, consumerTx: p.inboxTx})
				p.inboxTx = false
			case "rollback", "abort", "begin":
				p.inboxTx = false
			}
		case 'P':
			name, rest := cstringAndRest(body)
			p.stmts[name] = classifySQL(cstring(rest))
		case 'B':
			_, rest := cstringAndRest(body) // portal
			switch p.stmts[cstring(rest)] {
			case stmtInboxClaim:
				p.inboxTx = true
			case stmtCursorWrite:
				out = append(out, pgEvent{kind: pgCursorWrite})
			case stmtCommit:
				out = append(out, pgEvent{kind: pgCommit, consumerTx: p.inboxTx})
				p.inboxTx = false
			case stmtTxBoundary:
				p.inboxTx = false
			}
		}
		p.buf = p.buf[1+n:]
	}
	if len(p.buf) == 0 {
		p.buf = nil
	}
	return out
}

func (p *pgParser) fail() {
	p.broken = true
	p.buf = nil
}

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func cstringAndRest(b []byte) (string, []byte) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:]
		}
	}
	return string(b), nil
}
