package contract

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
)

// capture records every message any producer publishes: an exclusive queue
// bound with "#" to every producer exchange of the registry, so it sees
// exactly what goes over the broker, whoever else is bound.
type capture struct {
	mu   sync.Mutex
	msgs []amqp.Delivery
}

// producerServices are the services that publish at least one type.
func producerServices() []string {
	var out []string
	for _, e := range contracts.Registry() {
		if !slices.Contains(out, e.Producer) {
			out = append(out, e.Producer)
		}
	}
	slices.Sort(out)
	return out
}

// startCapture binds the capture queue; the exchanges exist once `shopmesh
// migrate` has declared the topology.
func startCapture(t *testing.T, amqpURL string) *capture {
	t.Helper()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatalf("capture queue: %v", err)
	}
	for _, p := range producerServices() {
		if err := ch.QueueBind(q.Name, "#", outbox.ExchangeName(p), false, nil); err != nil {
			t.Fatalf("bind capture queue to %s: %v", outbox.ExchangeName(p), err)
		}
	}
	deliveries, err := ch.Consume(q.Name, "contract-capture", true, true, false, false, nil)
	if err != nil {
		t.Fatalf("capture consume: %v", err)
	}
	c := &capture{}
	go func() {
		for d := range deliveries {
			c.mu.Lock()
			c.msgs = append(c.msgs, d)
			c.mu.Unlock()
		}
	}()
	return c
}

// snapshot returns the messages captured so far, in arrival order.
func (c *capture) snapshot() []amqp.Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// types counts the captured messages per type.
func (c *capture) types() map[string]int {
	out := map[string]int{}
	for _, d := range c.snapshot() {
		out[d.RoutingKey]++
	}
	return out
}

// mayLackCause are the types a service can publish on its own initiative
// (an HTTP request, an operator command, a simulator or clock) rather than in
// reaction to a message; every other type must name the message that caused
// it. Each still may carry a cause when a message did trigger it.
var mayLackCause = map[string]string{
	contracts.TypeUserRegisteredV1:     "an HTTP request",
	contracts.TypeUserAddressChangedV1: "an HTTP request",
	contracts.TypeUserDeactivatedV1:    "an admin HTTP request",
	contracts.TypeProductCreatedV1:     "an admin HTTP request",
	contracts.TypeProductUpdatedV1:     "an admin HTTP request",
	contracts.TypePriceChangedV1:       "an admin HTTP request",
	contracts.TypeCartLineUpdatedV1:    "an HTTP request",
	contracts.TypeCartLineRemovedV1:    "an HTTP request",
	contracts.TypeCartCheckedOutV1:     "an HTTP request",
	contracts.TypeStockAdjustedV1:      "an admin restock",
	contracts.TypeStockLevelChangedV1:  "an admin restock",
	contracts.TypeLowStockV1:           "an admin stock adjustment",
	// A customer's cancel request.
	contracts.TypeOrderCancellationRequestedV1: "an HTTP request",
	contracts.TypeOrderCancelledV1:             "an HTTP request (cancel of a pending order)",
	contracts.TypeOrderRefundRequestedV1:       "an HTTP request (cancel of a paid order)",
	contracts.TypeStockReleasedV1:              "an HTTP request (cancel of a pending order)",
	// The carrier simulator's timers.
	contracts.TypeShipmentDispatchedV1: "the carrier simulator",
	contracts.TypeShipmentDeliveredV1:  "the carrier simulator",
	contracts.TypeShipmentFailedV1:     "the carrier simulator",
}

// typeName is the wire form of a type: snake_case service and fact, version ≥ 1.
var typeName = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*\.[a-z][a-z0-9]*(_[a-z0-9]+)*\.v[1-9][0-9]*$`)

// checkEnvelope validates one captured message against the envelope rules
// and its payload against its schema; it returns every violation.
func checkEnvelope(d amqp.Delivery) []string {
	var bad []string
	fail := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	header := func(k string) string { s, _ := d.Headers[k].(string); return s }

	id := header(outbox.HeaderID)
	if u, err := uuid.Parse(id); err != nil || u.Version() != 7 || u.String() != id {
		fail("id %q is not a canonical UUIDv7", id)
	}
	if d.MessageId != id {
		fail("message_id property %q differs from id header %q", d.MessageId, id)
	}

	typ := header(outbox.HeaderType)
	if typ != d.RoutingKey || typ != d.Type {
		fail("type header %q, type property %q and routing key %q differ", typ, d.Type, d.RoutingKey)
	}
	if !typeName.MatchString(typ) {
		fail("type %q is not <service>.<fact>.v<N>", typ)
	}
	et, err := contracts.Lookup(typ)
	if err != nil {
		fail("type %q: %v", typ, err)
	}

	source := header(outbox.HeaderSource)
	if service, _, _ := strings.Cut(typ, "."); service != source {
		fail("source %q publishes a type of service %q", source, service)
	}
	if d.Exchange != outbox.ExchangeName(source) {
		fail("source %q published on exchange %q", source, d.Exchange)
	}
	if err == nil && source != et.Producer {
		fail("source %q, but the registry's producer of %s is %q", source, typ, et.Producer)
	}
	if d.AppId != source {
		fail("app_id property %q differs from source %q", d.AppId, source)
	}
	if header(outbox.HeaderAggregateID) == "" {
		fail("aggregate_id is empty")
	}
	if at := header(outbox.HeaderOccurredAt); at == "" {
		fail("occurred_at is missing")
	} else if _, err := time.Parse(time.RFC3339, at); err != nil {
		fail("occurred_at %q is not RFC 3339: %v", at, err)
	}
	if header(outbox.HeaderCorrelationID) == "" {
		fail("correlation_id is missing")
	} else if d.CorrelationId != header(outbox.HeaderCorrelationID) {
		fail("correlation_id property %q differs from header %q", d.CorrelationId, header(outbox.HeaderCorrelationID))
	}
	if _, ok := mayLackCause[typ]; !ok && header(outbox.HeaderCausationID) == "" {
		fail("causation_id is missing, yet %s is only published in reaction to a message", typ)
	}
	if d.ContentType != "application/json" {
		fail("content type %q, want application/json", d.ContentType)
	}
	if d.DeliveryMode != amqp.Persistent {
		fail("delivery mode %d, want persistent (%d)", d.DeliveryMode, amqp.Persistent)
	}
	if err == nil {
		if err := contracts.Validate(typ, d.Body); err != nil {
			fail("payload breaks its schema: %v", err)
		}
	}
	return bad
}

// TestEnvelopeCheckCatchesViolations proves the envelope rules on messages
// built by hand: a well-formed one passes, each broken rule is reported.
func TestEnvelopeCheckCatchesViolations(t *testing.T) {
	t.Parallel()
	placed, err := contracts.Lookup(contracts.TypeOrderPlacedV1)
	if err != nil {
		t.Fatal(err)
	}
	good := func() amqp.Delivery {
		id := outbox.NewID()
		return amqp.Delivery{
			Exchange: "shopmesh.order", RoutingKey: placed.Name, MessageId: id, Type: placed.Name, AppId: "order",
			CorrelationId: "c-1", ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: placed.Example,
			Headers: amqp.Table{outbox.HeaderID: id, outbox.HeaderType: placed.Name, outbox.HeaderSource: "order",
				outbox.HeaderAggregateID: "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90", outbox.HeaderOccurredAt: "2026-05-01T10:00:00.123Z",
				outbox.HeaderCorrelationID: "c-1", outbox.HeaderCausationID: outbox.NewID()},
		}
	}
	if bad := checkEnvelope(good()); len(bad) != 0 {
		t.Fatalf("a well-formed message breaks %q", bad)
	}
	cases := map[string]func(d *amqp.Delivery){
		"UUIDv4 id":           func(d *amqp.Delivery) { d.Headers[outbox.HeaderID] = "0b0c46b4-5f3b-4c3e-9b7e-3f1c2b9a8d7e" },
		"routing key differs": func(d *amqp.Delivery) { d.RoutingKey = "order.confirmed.v1" },
		"unknown version": func(d *amqp.Delivery) {
			d.RoutingKey, d.Type, d.Headers[outbox.HeaderType] = "order.placed.v9", "order.placed.v9", "order.placed.v9"
		},
		"foreign source":       func(d *amqp.Delivery) { d.Headers[outbox.HeaderSource], d.AppId = "cart", "cart" },
		"wrong exchange":       func(d *amqp.Delivery) { d.Exchange = "shopmesh.cart" },
		"no aggregate":         func(d *amqp.Delivery) { delete(d.Headers, outbox.HeaderAggregateID) },
		"local time":           func(d *amqp.Delivery) { d.Headers[outbox.HeaderOccurredAt] = "2026-05-01 10:00:00" },
		"no correlation":       func(d *amqp.Delivery) { delete(d.Headers, outbox.HeaderCorrelationID) },
		"no cause of reaction": func(d *amqp.Delivery) { delete(d.Headers, outbox.HeaderCausationID) },
		"text content":         func(d *amqp.Delivery) { d.ContentType = "text/plain" },
		"transient":            func(d *amqp.Delivery) { d.DeliveryMode = amqp.Transient },
		"payload breaks schema": func(d *amqp.Delivery) {
			d.Body = []byte(`{"order_id": "not-a-uuid"}`)
		},
	}
	for name, breakIt := range cases {
		d := good()
		breakIt(&d)
		if bad := checkEnvelope(d); len(bad) == 0 {
			t.Errorf("%s: not reported", name)
		}
	}
}
