package chaos

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// frame builds one AMQP frame.
func frame(typ byte, channel uint16, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteByte(typ)
	_ = binary.Write(&b, binary.BigEndian, channel)
	_ = binary.Write(&b, binary.BigEndian, uint32(len(payload)))
	b.Write(payload)
	b.WriteByte(frameEnd)
	return b.Bytes()
}

func shortStr(s string) []byte { return append([]byte{byte(len(s))}, s...) }

func method(class, m uint16, args ...[]byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, class)
	b = binary.BigEndian.AppendUint16(b, m)
	for _, a := range args {
		b = append(b, a...)
	}
	return b
}

// header is a content header whose only properties are the headers table
// (empty) and the message id.
func header(messageID string) []byte {
	b := binary.BigEndian.AppendUint16(nil, 60)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint64(b, 2)
	b = binary.BigEndian.AppendUint16(b, 1<<13|1<<7)
	b = binary.BigEndian.AppendUint32(b, 0) // empty headers table
	return append(b, shortStr(messageID)...)
}

func table(key, value string) []byte {
	entry := append(shortStr(key), 'S')
	entry = binary.BigEndian.AppendUint32(entry, uint32(len(value)))
	entry = append(entry, value...)
	// a bool entry before it, to be skipped
	b := append(shortStr("capabilities_bool"), 't', 1)
	b = append(b, entry...)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

// feedInPieces hands the stream to the parser in chunks of n bytes.
func feedInPieces(p *amqpParser, stream []byte, n int) []amqpEvent {
	var out []amqpEvent
	for len(stream) > 0 {
		k := min(n, len(stream))
		out = append(out, p.feed(stream[:k])...)
		stream = stream[k:]
	}
	return out
}

func TestAMQPParserUpstream(t *testing.T) {
	var stream []byte
	stream = append(stream, 'A', 'M', 'Q', 'P', 0, 0, 9, 1)
	stream = append(stream, frame(frameMethod, 0, method(10, 11, table("connection_name", "relay:order")))...)
	stream = append(stream, frame(frameMethod, 1, method(60, 40, []byte{0, 0}, shortStr("shopmesh.order"), shortStr("order.placed.v1"), []byte{1}))...)
	stream = append(stream, frame(frameHeader, 1, header("msg-1"))...)
	stream = append(stream, frame(3, 1, []byte("{}"))...)
	stream = append(stream, frame(frameMethod, 1, method(60, 80, make([]byte, 9)))...)
	for _, n := range []int{1, 3, 7, 1000} {
		evs := feedInPieces(newAMQPParser(true), stream, n)
		if len(evs) != 3 {
			t.Fatalf("chunks of %d: %d events %+v, want 3", n, len(evs), evs)
		}
		if evs[0].kind != evConnectionName || evs[0].name != "relay:order" || connectionRole(evs[0].name) != roleRelay {
			t.Errorf("chunks of %d: first event %+v, want the connection name relay:order", n, evs[0])
		}
		if evs[1].kind != evPublish || evs[1].routingKey != "order.placed.v1" || evs[1].messageID != "msg-1" {
			t.Errorf("chunks of %d: second event %+v, want the publish of msg-1", n, evs[1])
		}
		if evs[2].kind != evConsumerAck {
			t.Errorf("chunks of %d: third event %+v, want a consumer ack", n, evs[2])
		}
	}
}

func TestAMQPParserDownstream(t *testing.T) {
	deliver := func(redelivered byte, id string) []byte {
		m := method(60, 60, shortStr("ctag"), make([]byte, 8), []byte{redelivered}, shortStr("shopmesh.order"), shortStr("order.cancelled.v1"))
		return append(frame(frameMethod, 2, m), frame(frameHeader, 2, header(id))...)
	}
	var stream []byte
	stream = append(stream, frame(frameMethod, 2, method(60, 21, shortStr("ctag")))...)
	stream = append(stream, deliver(0, "a")...)
	stream = append(stream, deliver(1, "a")...)
	evs := feedInPieces(newAMQPParser(false), stream, 5)
	if len(evs) != 3 || evs[0].kind != evConsumeOk {
		t.Fatalf("events %+v, want consume-ok and two deliveries", evs)
	}
	if evs[1].redelivered || !evs[2].redelivered || evs[2].messageID != "a" || evs[2].routingKey != "order.cancelled.v1" {
		t.Errorf("deliveries %+v %+v, want a first delivery and a redelivery of a", evs[1], evs[2])
	}
	s := newAMQPStats()
	for _, ev := range evs {
		s.record(ev)
	}
	if got := s.snapshot(); got.Deliveries != 2 || got.Redeliveries != 1 || got.DuplicateDeliveries != 1 {
		t.Errorf("stats %+v, want 2 deliveries, 1 redelivery, 1 duplicate", got)
	}
}

func TestAMQPParserGivesUpOnGarbage(t *testing.T) {
	p := newAMQPParser(true)
	if evs := p.feed([]byte("GET / HTTP/1.1\r\n\r\n")); len(evs) != 0 || !p.broken {
		t.Errorf("garbage: events %v, broken %v; want none and broken", evs, p.broken)
	}
}

func pgMessage(typ byte, body ...[]byte) []byte {
	var b []byte
	for _, x := range body {
		b = append(b, x...)
	}
	out := append([]byte{typ}, binary.BigEndian.AppendUint32(nil, uint32(len(b)+4))...)
	return append(out, b...)
}

func cstr(s string) []byte { return append([]byte(s), 0) }

func TestPGParser(t *testing.T) {
	startup := binary.BigEndian.AppendUint32(nil, 0)
	startup = binary.BigEndian.AppendUint32(startup, 196608)
	startup = append(startup, cstr("user")...)
	startup = append(startup, cstr("x")...)
	startup = append(startup, 0)
	binary.BigEndian.PutUint32(startup, uint32(len(startup)))
	var stream []byte
	stream = append(stream, startup...)
	stream = append(stream, pgMessage('P', cstr("stmt_begin"), cstr("begin"), []byte{0, 0})...)
	stream = append(stream, pgMessage('P', cstr("stmt_commit"), cstr("COMMIT"), []byte{0, 0})...)
	stream = append(stream, pgMessage('Q', cstr("begin"))...)
	stream = append(stream, pgMessage('P', cstr("stmt_1"), cstr("INSERT INTO inbox (consumer, message_id, type) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"), []byte{0, 0})...)
	stream = append(stream, pgMessage('B', cstr(""), cstr("stmt_1"), []byte{0, 0, 0, 0, 0, 0})...)
	stream = append(stream, pgMessage('Q', cstr("commit"))...)
	stream = append(stream, pgMessage('Q', cstr("begin"))...)
	stream = append(stream, pgMessage('P', cstr(""), cstr("UPDATE watermill_offsets_outbox SET offset_acked = $1"), []byte{0, 0})...)
	stream = append(stream, pgMessage('B', cstr(""), cstr(""), []byte{0, 0, 0, 0, 0, 0})...)
	stream = append(stream, pgMessage('Q', cstr("commit"))...)
	// A consumer as it runs now: BEGIN and the claim in one batch, the
	// COMMIT in another with the last writes, its statements prepared once
	// and then only bound.
	for range 2 {
		stream = append(stream, pgMessage('B', cstr(""), cstr("stmt_begin"), []byte{0, 0, 0, 0, 0, 0})...)
		stream = append(stream, pgMessage('B', cstr(""), cstr("stmt_1"), []byte{0, 0, 0, 0, 0, 0})...)
		stream = append(stream, pgMessage('B', cstr(""), cstr("stmt_commit"), []byte{0, 0, 0, 0, 0, 0})...)
	}
	// A batch outside a consumer's transaction commits without a claim.
	stream = append(stream, pgMessage('B', cstr(""), cstr("stmt_begin"), []byte{0, 0, 0, 0, 0, 0})...)
	stream = append(stream, pgMessage('B', cstr(""), cstr("stmt_commit"), []byte{0, 0, 0, 0, 0, 0})...)
	p := newPGParser()
	var evs []pgEvent
	for i := 0; i < len(stream); i += 4 {
		evs = append(evs, p.feed(stream[i:min(i+4, len(stream))])...)
	}
	want := []pgEvent{{kind: pgCommit, consumerTx: true}, {kind: pgCursorWrite}, {kind: pgCommit},
		{kind: pgCommit, consumerTx: true}, {kind: pgCommit, consumerTx: true}, {kind: pgCommit}}
	if len(evs) != len(want) {
		t.Fatalf("events %+v, want %+v", evs, want)
	}
	for i := range want {
		if evs[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, evs[i], want[i])
		}
	}
}

func TestTriggerBudget(t *testing.T) {
	fired := 0
	tr := newTrigger(forwardThenClose, 2, 3, func(any) bool { return true }, func() { fired++ })
	ctl := newTapControl()
	ctl.arm(tr)
	matched := 0
	for range 20 {
		if ctl.match([]any{pgEvent{kind: pgCommit}}) != nil {
			matched++
		}
	}
	if matched != 2 || tr.Fired() != 2 {
		t.Errorf("matched %d, fired %d; want every 3rd match, twice", matched, tr.Fired())
	}
	select {
	case <-tr.done:
	default:
		t.Error("a spent trigger is not done")
	}
}

func TestOrderOutcome(t *testing.T) {
	at := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	timedOut := func(after time.Duration) orderRow {
		return orderRow{ID: "o", State: "cancelled", Reason: "payment_timeout", Timeline: []timelineEntry{
			{"placed", at}, {"stock_reserved", at}, {"payment_requested", at}, {"payment_timed_out", at.Add(after)}, {"cancelled", at.Add(after)}}}
	}
	cases := []struct {
		name  string
		path  Path
		order orderRow
		kinds []string
		raced int
	}{
		{"delivered", PathDelivered, orderRow{ID: "o", State: "delivered"}, nil, 0},
		{"declined as declined", PathDeclined, orderRow{ID: "o", State: "cancelled", Reason: "payment_declined"}, nil, 0},
		{"declined delivered", PathDeclined, orderRow{ID: "o", State: "delivered"}, []string{KindWrongOutcome}, 0},
		{"late answer after the timeout", PathDelivered, timedOut(6 * time.Second), nil, 1},
		{"timeout before its time", PathDelivered, timedOut(2 * time.Second), []string{KindWrongOutcome}, 0},
		{"timeout path", PathTimeout, timedOut(6 * time.Second), nil, 0},
		{"out of stock delivered", PathOutOfStock, orderRow{ID: "o", State: "delivered"}, []string{KindWrongOutcome}, 0},
	}
	for _, tc := range cases {
		l := &ledger{}
		checkOrderOutcome(l, &placedOrder{plannedOrder: plannedOrder{Path: tc.path}}, tc.order, 6*time.Second)
		var kinds []string
		for _, v := range l.Violations {
			kinds = append(kinds, v.Kind)
		}
		if len(kinds) != len(tc.kinds) || (len(kinds) > 0 && kinds[0] != tc.kinds[0]) || l.Raced != tc.raced {
			t.Errorf("%s: violations %v, raced %d; want %v, raced %d", tc.name, l.Violations, l.Raced, tc.kinds, tc.raced)
		}
	}
}

func TestPlanCoversEveryPath(t *testing.T) {
	w := planWorkload(1, "abcd1234", "mixed", len(allPaths), nil)
	seen := map[Path]bool{}
	for _, o := range w.orders {
		seen[o.Path] = true
	}
	for _, p := range allPaths {
		if !seen[p] {
			t.Errorf("a plan of %d orders lacks path %s", len(allPaths), p)
		}
	}
	again := planWorkload(1, "abcd1234", "mixed", len(allPaths), nil)
	for i := range w.orders {
		if w.orders[i].Path != again.orders[i].Path || len(w.orders[i].Lines) != len(again.orders[i].Lines) {
			t.Fatalf("the same seed planned differently at order %d", i)
		}
	}
	for _, p := range w.products {
		if len(p.SKU) > 40 {
			t.Errorf("sku %s is longer than the catalogue allows", p.SKU)
		}
	}
}
