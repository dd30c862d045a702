package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/internal/wait"
)

// marshaler converts between watermill messages (the outbox row's uuid,
// payload and metadata) and AMQP messages: metadata become headers, and the
// envelope fields are also set as the standard AMQP properties.
var marshaler = wamqp.DefaultMarshaler{
	PostprocessPublishing: func(p amqp.Publishing) amqp.Publishing {
		p.ContentType = "application/json"
		if s, ok := p.Headers[HeaderID].(string); ok {
			p.MessageId = s
		}
		if s, ok := p.Headers[HeaderType].(string); ok {
			p.Type = s
		}
		if s, ok := p.Headers[HeaderSource].(string); ok {
			p.AppId = s
		}
		if s, ok := p.Headers[HeaderCorrelationID].(string); ok {
			p.CorrelationId = s
		}
		if s, ok := p.Headers[HeaderOccurredAt].(string); ok {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				p.Timestamp = t
			}
		}
		return p
	},
}

// rowToPublishing builds the AMQP message for an outbox row.
func rowToPublishing(uuid string, payload, metadata []byte) (amqp.Publishing, message.Metadata, error) {
	md := message.Metadata{}
	if len(metadata) > 0 {
		if err := json.Unmarshal(metadata, &md); err != nil {
			return amqp.Publishing{}, nil, fmt.Errorf("outbox row %s metadata: %w", uuid, err)
		}
	}
	m := message.NewMessage(uuid, payload)
	m.Metadata = md
	p, err := marshaler.Marshal(m)
	if err != nil {
		return amqp.Publishing{}, nil, fmt.Errorf("outbox row %s: %w", uuid, err)
	}
	return p, md, nil
}

// deliveryToMessage decodes the envelope of a delivery from its headers
// (and, when they lack them, the AMQP message id and type properties).
func deliveryToMessage(d amqp.Delivery) (Message, error) {
	h := d.Headers
	m := Message{
		ID:            header(h, HeaderID),
		Type:          header(h, HeaderType),
		Source:        header(h, HeaderSource),
		AggregateID:   header(h, HeaderAggregateID),
		CorrelationID: header(h, HeaderCorrelationID),
		CausationID:   header(h, HeaderCausationID),
		Traceparent:   header(h, HeaderTraceparent),
		Payload:       json.RawMessage(d.Body),
		Redelivered:   d.Redelivered,
		Replayed:      header(h, HeaderReplay) != "",
	}
	if m.ID == "" {
		m.ID = d.MessageId
	}
	if m.Type == "" {
		m.Type = d.Type
	}
	if s := header(h, HeaderOccurredAt); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			m.OccurredAt = t
		}
	}
	switch {
	case m.ID == "":
		return m, fmt.Errorf("message has no id")
	case m.Type == "":
		return m, fmt.Errorf("message %s has no type", m.ID)
	}
	return m, nil
}

// header is the header key of h as a string: a scalar converted, a table,
// an array or a missing header "". The broker adds headers of its own that
// are not strings (an integer x-delivery-count on every redelivery from a
// quorum queue, x-death tables on dead-lettered messages); the delivery
// itself keeps every header (the dead-letter store records them).
func header(h amqp.Table, key string) string {
	switch x := h[key].(type) {
	case string:
		return x
	case bool, int, int8, int16, int32, int64, uint8, uint16, uint32, uint64, float32, float64:
		return fmt.Sprint(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	return ""
}

// HandshakeTimeout bounds connecting to the broker and the AMQP handshake
// (amqp091's own default): a broker starved of CPU has taken more than 5 s
// to answer one, and a refused connection fails at once anyway.
const HandshakeTimeout = 30 * time.Second

// dial connects to RabbitMQ, retrying with capped, jittered backoff until
// ctx ends, so a relay or consumer started before the broker simply waits.
// It also returns the connection's socket as a batchConn, whose writes a
// publisher holds while it sends a batch.
func dial(ctx context.Context, url, name string, onRetry func(error)) (*amqp.Connection, *batchConn, error) {
	delay := 100 * time.Millisecond
	for {
		var bc *batchConn
		cfg := amqp.Config{
			Heartbeat:  10 * time.Second,
			Properties: amqp.Table{"connection_name": name},
			Dial:       batchingDial(amqp.DefaultDial(HandshakeTimeout), &bc),
		}
		conn, err := amqp.DialConfig(url, cfg)
		if err == nil {
			return conn, bc, nil
		}
		if onRetry != nil {
			onRetry(err)
		}
		if err := wait.Sleep(ctx, jitter(delay)); err != nil {
			return nil, nil, err
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// batchingDial wraps dial's connections in a batchConn, kept in *bc (the
// AMQP client does not expose its socket).
func batchingDial(dial func(network, addr string) (net.Conn, error), bc **batchConn) func(network, addr string) (net.Conn, error) {
	return func(network, addr string) (net.Conn, error) {
		conn, err := dial(network, addr)
		if err != nil {
			return nil, err
		}
		*bc = &batchConn{Conn: conn}
		return *bc, nil
	}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// declareExchange declares a producer's durable topic exchange.
func declareExchange(ch *amqp.Channel, service string) error {
	if err := ch.ExchangeDeclare(ExchangeName(service), "topic", true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", ExchangeName(service), err)
	}
	return nil
}

// QueueSpec describes a consumer queue and what it binds.
type QueueSpec struct {
	Name string
	// Types are the event types bound; each is bound on its producer's
	// exchange with the type as routing key, so the broker filters.
	Types []string
	// DeliveryLimit is the broker-side redelivery cap; past it the broker
	// dead-letters the message to the queue's .dlx exchange (there must
	// always be such a route: a quorum queue with a limit and no route drops).
	DeliveryLimit int
	// SingleActiveConsumer keeps per-key order when replicas share the queue:
	// one consumer receives, the others stand by.
	SingleActiveConsumer bool
}

// DeclareExchange declares a producer's exchange (used by operators and tests
// that set up the whole topology ahead of the services).
func DeclareExchange(ch *amqp.Channel, service string) error { return declareExchange(ch, service) }

// DeclareQueue declares the quorum queue, its dead-letter exchange and queue,
// the producer exchanges it reads from, and one binding per type.
func DeclareQueue(ch *amqp.Channel, q QueueSpec) error {
	dlx, dlq := deadLetterExchange(q.Name), deadLetterQueue(q.Name)
	if err := ch.ExchangeDeclare(dlx, "fanout", true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare %s: %w", dlx, err)
	}
	if _, err := ch.QueueDeclare(dlq, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		return fmt.Errorf("declare %s: %w", dlq, err)
	}
	if err := ch.QueueBind(dlq, "", dlx, false, nil); err != nil {
		return fmt.Errorf("bind %s: %w", dlq, err)
	}
	args := amqp.Table{
		"x-queue-type":           "quorum",
		"x-dead-letter-exchange": dlx,
	}
	if q.DeliveryLimit > 0 {
		args["x-delivery-limit"] = int64(q.DeliveryLimit)
	}
	if q.SingleActiveConsumer {
		args["x-single-active-consumer"] = true
	}
	if _, err := ch.QueueDeclare(q.Name, true, false, false, false, args); err != nil {
		return fmt.Errorf("declare %s: %w", q.Name, err)
	}
	for _, t := range q.Types {
		producer, err := ProducerOf(t)
		if err != nil {
			return err
		}
		// Passive: a consumer may read another service's exchange but not
		// configure it; the producer's relay (or `shopmesh migrate`) declares it.
		if err := ch.ExchangeDeclarePassive(ExchangeName(producer), "topic", true, false, false, false, nil); err != nil {
			return fmt.Errorf("exchange %s of producer %s does not exist yet: %w", ExchangeName(producer), producer, err)
		}
		if err := ch.QueueBind(q.Name, t, ExchangeName(producer), false, nil); err != nil {
			return fmt.Errorf("bind %s to %s: %w", q.Name, t, err)
		}
	}
	return nil
}
