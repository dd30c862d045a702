package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"
)

// The proxies: one toxiproxy proxy per service per dependency (its
// PostgreSQL and its RabbitMQ), embedded in the harness and listening on
// 127.0.0.1 only, so that a fault can target one service's link. Beside the
// stock toxics (latency, timeout, reset_peer, limit_data), every link carries
// a tap: a toxic of this package that passes the stream through unchanged
// while reading its protocol, which gives exact observations (which message
// ids were published twice, which deliveries were redeliveries) and exact
// fault points (the moment a consumer commits, the moment a relay writes
// its cursor after the broker confirmed).

const (
	amqpTapType = "shopmesh_amqp_tap"
	pgTapType   = "shopmesh_pg_tap"
)

// linkProxy is one proxy with its taps.
type linkProxy struct {
	name    string
	service string
	kind    string // "amqp" or "postgres"
	proxy   *toxiproxy.Proxy
	ctl     *tapControl
	stats   *amqpStats // amqp only

	mu     sync.Mutex
	toxics []string // stock toxics currently set
	seq    atomic.Int64
}

// Addr is where clients connect.
func (l *linkProxy) Addr() string { return l.proxy.Listen }

type proxySet struct {
	server *toxiproxy.ApiServer
	amqp   map[string]*linkProxy
	pg     map[string]*linkProxy
}

func newProxySet() *proxySet {
	// Registering a toxic type is how toxiproxy learns it; the registry is
	// the library's own, and registering again is harmless.
	toxics.Register(amqpTapType, new(amqpTap))
	toxics.Register(pgTapType, new(pgTap))
	return &proxySet{
		server: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop()),
		amqp:   map[string]*linkProxy{},
		pg:     map[string]*linkProxy{},
	}
}

// add creates and starts the proxies of one service.
func (ps *proxySet) add(service, pgUpstream, amqpUpstream string) error {
	pg, err := ps.start(service, "postgres", pgUpstream)
	if err != nil {
		return err
	}
	ps.pg[service] = pg
	mq, err := ps.start(service, "amqp", amqpUpstream)
	if err != nil {
		return err
	}
	ps.amqp[service] = mq
	return nil
}

func (ps *proxySet) start(service, kind, upstream string) (*linkProxy, error) {
	name := service + "-" + kind
	p := toxiproxy.NewProxy(ps.server, name, "127.0.0.1:0", upstream)
	l := &linkProxy{name: name, service: service, kind: kind, proxy: p, ctl: newTapControl()}
	// The taps are added before the proxy accepts anything, so every
	// connection runs through them from its first byte.
	if kind == "amqp" {
		l.stats = newAMQPStats()
		for _, up := range []bool{true, false} {
			stream := "downstream"
			if up {
				stream = "upstream"
			}
			w, err := p.Toxics.AddToxicJson(strings.NewReader(fmt.Sprintf(`{"name":"tap_%s","type":%q,"stream":%q}`, stream, amqpTapType, stream)))
			if err != nil {
				return nil, fmt.Errorf("proxy %s: add tap: %w", name, err)
			}
			w.Toxic = &amqpTap{upstream: up, ctl: l.ctl, stats: l.stats}
		}
	} else {
		w, err := p.Toxics.AddToxicJson(strings.NewReader(fmt.Sprintf(`{"name":"tap_upstream","type":%q,"stream":"upstream"}`, pgTapType)))
		if err != nil {
			return nil, fmt.Errorf("proxy %s: add tap: %w", name, err)
		}
		w.Toxic = &pgTap{ctl: l.ctl}
	}
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("start proxy %s: %w", name, err)
	}
	return l, nil
}

// stockToxic sets one of toxiproxy's own toxics on both or one stream and
// returns its names; heal removes it.
func (l *linkProxy) stockToxic(typ string, streams []string, attributes map[string]any) error {
	attrs, err := json.Marshal(attributes)
	if err != nil {
		return err
	}
	for _, s := range streams {
		name := fmt.Sprintf("%s_%s_%d", typ, s, l.seq.Add(1))
		body := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, name, typ, s, attrs)
		if _, err := l.proxy.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
			return fmt.Errorf("proxy %s: add %s: %w", l.name, typ, err)
		}
		l.mu.Lock()
		l.toxics = append(l.toxics, name)
		l.mu.Unlock()
	}
	return nil
}

// heal removes every stock toxic and every fault and trigger of the taps.
func (l *linkProxy) heal(ctx context.Context) {
	l.mu.Lock()
	names := l.toxics
	l.toxics = nil
	l.mu.Unlock()
	for _, n := range names {
		_ = l.proxy.Toxics.RemoveToxic(ctx, n)
	}
	l.ctl.reset()
}

func (ps *proxySet) all() []*linkProxy {
	var out []*linkProxy
	for _, l := range ps.pg {
		out = append(out, l)
	}
	for _, l := range ps.amqp {
		out = append(out, l)
	}
	return out
}

func (ps *proxySet) heal(ctx context.Context) {
	for _, l := range ps.all() {
		l.heal(ctx)
	}
}

func (ps *proxySet) close() {
	for _, l := range ps.all() {
		l.ctl.reset()
		l.proxy.Stop()
	}
}

// wireStats sums the AMQP observations of every service.
func (ps *proxySet) wireStats() wireCounts {
	var w wireCounts
	for _, l := range ps.amqp {
		w = w.add(l.stats.snapshot())
	}
	return w
}

// tapControl is what the harness sets on the taps of one proxy: a role
// whose client-to-broker data is dropped (a blackhole that spares the
// link's other connections) and one-shot triggers that act at an exact
// protocol moment. It is shared by the taps of both streams.
type tapControl struct {
	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every change
	blackhole string        // role whose upstream data is dropped
	triggers  []*trigger
}

func newTapControl() *tapControl { return &tapControl{changed: make(chan struct{})} }

func (c *tapControl) changes() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

func (c *tapControl) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *tapControl) setBlackhole(role string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.blackhole = role
	c.notify()
}

func (c *tapControl) blocks(upstream bool, role string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return upstream && role != "" && c.blackhole == role
}

func (c *tapControl) arm(t *trigger) {
	c.mu.Lock()
	defer c.mu.Unlock()
	live := c.triggers[:0]
	for _, x := range c.triggers {
		if !x.spent() {
			live = append(live, x)
		}
	}
	c.triggers = append(live, t)
}

// reset lifts the blackhole and disarms every trigger.
func (c *tapControl) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.triggers {
		t.disarm()
	}
	c.triggers = nil
	c.blackhole = ""
	c.notify()
}

// match returns the first armed trigger that takes one of the events (and
// counts it against the trigger's budget).
func (c *tapControl) match(events []any) *trigger {
	if len(events) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.triggers {
		for _, ev := range events {
			if t.take(ev) {
				return t
			}
		}
	}
	return nil
}

// chunkAction is what a tap does with the chunk that fired a trigger.
type chunkAction int

const (
	// fireThenForward: act (say, SIGKILL the client), then let the chunk
	// through; for a COMMIT this is "committed, but the client never knew".
	fireThenForward chunkAction = iota
	// forwardThenFire: let the chunk through, then act.
	forwardThenFire
	// fireThenDropClose: act, drop the chunk and close the connection; for
	// a COMMIT this is "never committed".
	fireThenDropClose
	// forwardThenClose: let the chunk through and close the connection at
	// once; for a COMMIT this is "committed, the answer lost".
	forwardThenClose
)

// trigger acts when its tap sees a matching event, at most budget times
// (every every-th match).
type trigger struct {
	match  func(ev any) bool
	action chunkAction
	fire   func()
	budget int
	every  int

	mu    sync.Mutex
	seen  int
	fired int
	done  chan struct{} // closed when the budget is spent or disarmed
	off   bool
}

func newTrigger(action chunkAction, budget, every int, match func(any) bool, fire func()) *trigger {
	if every < 1 {
		every = 1
	}
	if fire == nil {
		fire = func() {}
	}
	return &trigger{match: match, action: action, fire: fire, budget: budget, every: every, done: make(chan struct{})}
}

func (t *trigger) take(ev any) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.off || !t.match(ev) {
		return false
	}
	t.seen++
	if t.seen%t.every != 0 {
		return false
	}
	t.fired++
	if t.fired >= t.budget {
		t.off = true
		close(t.done)
	}
	return true
}

func (t *trigger) spent() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.off
}

func (t *trigger) disarm() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.off {
		t.off = true
		close(t.done)
	}
}

// Fired is how often the trigger acted.
func (t *trigger) Fired() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.fired
}

// pipe runs one tap: it hands every chunk to observe, applies the control's
// blackhole and triggers, and otherwise forwards the chunk unchanged.
func pipe(stub *toxics.ToxicStub, ctl *tapControl, upstream bool, observe func([]byte) ([]any, string)) {
	blackholed := false
	for {
		changed := ctl.changes()
		select {
		case <-stub.Interrupt:
			return
		case <-changed:
			if blackholed && !ctl.blocks(upstream, roleOf(stub)) {
				// Healed: the connection's stream is broken (bytes were
				// dropped), so it is closed and the client reconnects.
				stub.Close()
				return
			}
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			events, role := observe(c.Data)
			if ctl.blocks(upstream, role) {
				blackholed = true
				continue
			}
			t := ctl.match(events)
			if t == nil {
				stub.Output <- c
				continue
			}
			switch t.action {
			case fireThenForward:
				t.fire()
				stub.Output <- c
			case forwardThenFire:
				stub.Output <- c
				t.fire()
			case fireThenDropClose:
				t.fire()
				stub.Close()
				return
			case forwardThenClose:
				stub.Output <- c
				stub.Close()
				return
			}
		}
	}
}

// roleOf reads the role a tap recorded in the stub's state.
func roleOf(stub *toxics.ToxicStub) string {
	if st, ok := stub.State.(*amqpConnState); ok {
		return st.role
	}
	return ""
}

// amqpTap observes one stream of an AMQP link.
type amqpTap struct {
	upstream bool
	ctl      *tapControl
	stats    *amqpStats
}

type amqpConnState struct {
	parser      *amqpParser
	role        string
	lastPublish time.Time
}

// burstGap is the longest gap between two publishes of one relay batch: the
// relay publishes a batch back to back and only then waits for confirms.
const burstGap = 50 * time.Millisecond

// NewState is called by toxiproxy for every connection.
func (t *amqpTap) NewState() any { return &amqpConnState{parser: newAMQPParser(t.upstream)} }

// Pipe is called by toxiproxy for every connection.
func (t *amqpTap) Pipe(stub *toxics.ToxicStub) {
	if t.ctl == nil { // the prototype toxiproxy builds before it is replaced
		new(toxics.NoopToxic).Pipe(stub)
		return
	}
	st := stub.State.(*amqpConnState)
	pipe(stub, t.ctl, t.upstream, func(b []byte) ([]any, string) {
		evs := st.parser.feed(b)
		out := make([]any, 0, len(evs))
		for _, ev := range evs {
			switch ev.kind {
			case evConnectionName:
				st.role = connectionRole(ev.name)
			case evConsumeOk:
				st.role = roleConsumer
			case evSelectOk:
				st.role = roleRelay
			case evPublish:
				now := time.Now()
				ev.burst = !st.lastPublish.IsZero() && now.Sub(st.lastPublish) < burstGap
				st.lastPublish = now
			}
			t.stats.record(ev)
			out = append(out, ev)
		}
		return out, st.role
	})
}

// pgTap observes the client-to-server stream of a PostgreSQL link.
type pgTap struct {
	ctl *tapControl
}

// NewState is called by toxiproxy for every connection.
func (t *pgTap) NewState() any { return newPGParser() }

// Pipe is called by toxiproxy for every connection.
func (t *pgTap) Pipe(stub *toxics.ToxicStub) {
	if t.ctl == nil {
		new(toxics.NoopToxic).Pipe(stub)
		return
	}
	p := stub.State.(*pgParser)
	pipe(stub, t.ctl, true, func(b []byte) ([]any, string) {
		evs := p.feed(b)
		out := make([]any, 0, len(evs))
		for _, ev := range evs {
			out = append(out, ev)
		}
		return out, ""
	})
}

// amqpStats counts what crossed one service's AMQP link.
type amqpStats struct {
	mu        sync.Mutex
	published map[string]int
	delivered map[string]int
	counts    wireCounts
}

// wireCounts are observations on the wire, summed over links.
type wireCounts struct {
	Publishes int64 `json:"publishes"`
	// Republished counts publishes of a message id already published on
	// the same link: a relay sending again what it had sent.
	Republished int64 `json:"republished"`
	Confirms    int64 `json:"confirms"`
	Deliveries  int64 `json:"deliveries"`
	// Redeliveries counts deliveries the broker flagged as redelivered.
	Redeliveries int64 `json:"redeliveries"`
	// DuplicateDeliveries counts deliveries of a message id the service had
	// already been delivered (redelivered or published twice).
	DuplicateDeliveries int64 `json:"duplicate_deliveries"`
}

func (w wireCounts) add(o wireCounts) wireCounts {
	return wireCounts{w.Publishes + o.Publishes, w.Republished + o.Republished, w.Confirms + o.Confirms,
		w.Deliveries + o.Deliveries, w.Redeliveries + o.Redeliveries, w.DuplicateDeliveries + o.DuplicateDeliveries}
}

func (w wireCounts) sub(o wireCounts) wireCounts {
	return wireCounts{w.Publishes - o.Publishes, w.Republished - o.Republished, w.Confirms - o.Confirms,
		w.Deliveries - o.Deliveries, w.Redeliveries - o.Redeliveries, w.DuplicateDeliveries - o.DuplicateDeliveries}
}

func newAMQPStats() *amqpStats {
	return &amqpStats{published: map[string]int{}, delivered: map[string]int{}}
}

func (s *amqpStats) record(ev amqpEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch ev.kind {
	case evPublish:
		s.counts.Publishes++
		if ev.messageID != "" {
			if s.published[ev.messageID] > 0 {
				s.counts.Republished++
			}
			s.published[ev.messageID]++
		}
	case evConfirm:
		s.counts.Confirms++
	case evDeliver:
		s.counts.Deliveries++
		if ev.redelivered {
			s.counts.Redeliveries++
		}
		if ev.messageID != "" {
			if s.delivered[ev.messageID] > 0 {
				s.counts.DuplicateDeliveries++
			}
			s.delivered[ev.messageID]++
		}
	}
}

func (s *amqpStats) snapshot() wireCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}
