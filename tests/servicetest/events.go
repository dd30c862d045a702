package servicetest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
)

// Publish sends an event as its producer's relay would, occurring now, and
// returns its message id; see PublishAt.
func (s *Service) Publish(id, eventType, aggregateID string, payload any) string {
	s.t.Helper()
	return s.PublishAt(id, eventType, aggregateID, time.Now(), payload)
}

// PublishAt sends an event as its producer's relay would: on the producer's
// exchange, routed by type, with the outbox envelope saying it occurred at
// at (no occurred_at when at is zero), and waits for the broker's confirm.
// The payload is marshalled and must meet its contract; []byte or
// json.RawMessage is sent as it is, so a test can send what breaks it. The
// id is new when empty; a test gives one to deliver the very same message
// again. It returns the id.
func (s *Service) PublishAt(id, eventType, aggregateID string, at time.Time, payload any) string {
	s.t.Helper()
	if id == "" {
		id = outbox.NewID()
	}
	var body []byte
	switch p := payload.(type) {
	case []byte:
		body = p
	case json.RawMessage:
		body = p
	default:
		var err error
		if body, err = json.Marshal(payload); err != nil {
			s.t.Fatal(err)
		}
		if err := contracts.Validate(eventType, body); err != nil {
			s.t.Fatalf("test event %s breaks its contract: %v", eventType, err)
		}
	}
	producer, err := outbox.ProducerOf(eventType)
	if err != nil {
		s.t.Fatal(err)
	}
	headers := amqp.Table{outbox.HeaderID: id, outbox.HeaderType: eventType, outbox.HeaderSource: producer,
		outbox.HeaderAggregateID: aggregateID, outbox.HeaderCorrelationID: id}
	if !at.IsZero() {
		headers[outbox.HeaderOccurredAt] = at.UTC().Format(time.RFC3339Nano)
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.spec.Wait)
	defer cancel()
	s.pubMu.Lock()
	conf, err := s.pub.PublishWithDeferredConfirmWithContext(ctx, outbox.ExchangeName(producer), eventType, true, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: id, Type: eventType, AppId: producer,
		Headers: headers, Body: body,
	})
	s.pubMu.Unlock()
	if err != nil {
		s.t.Fatalf("publish %s: %v", eventType, err)
	}
	if ok, err := conf.WaitContext(ctx); !ok || err != nil {
		s.t.Fatalf("publish %s: not confirmed (%v)", eventType, err)
	}
	return id
}

// Events returns the events of eventType the service published so far, as
// the scratch queue received them; all of them when eventType is "".
func (s *Service) Events(eventType string) []outbox.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []outbox.Message
	for _, m := range s.events {
		if eventType == "" || m.Type == eventType {
			out = append(out, m)
		}
	}
	return out
}

// Published returns the payloads of the events of eventType the service
// published so far, decoded; one that breaks its contract fails the test.
func Published[T any](s *Service, eventType string) []T {
	s.t.Helper()
	var out []T
	for _, m := range s.Events(eventType) {
		var v T
		if err := contracts.Decode(eventType, m.Payload, &v); err != nil {
			s.t.Errorf("published %s does not meet its contract: %v", eventType, err)
			continue
		}
		out = append(out, v)
	}
	return out
}

// WaitEvent waits until the service published an event of eventType whose
// payload satisfies match (any, when nil), checks it against its contract,
// decodes it into v (unless nil) and returns it.
func (s *Service) WaitEvent(eventType string, v any, match func(payload json.RawMessage) bool) outbox.Message {
	s.t.Helper()
	var got outbox.Message
	s.Poll("event "+eventType, func() (bool, string) {
		var seen []string
		for _, m := range s.Events("") {
			seen = append(seen, m.Type)
			if m.Type == eventType && (match == nil || match(m.Payload)) {
				got = m
				return true, ""
			}
		}
		return false, fmt.Sprintf("received %v", seen)
	})
	if err := contracts.Validate(got.Type, got.Payload); err != nil {
		s.t.Errorf("published %s breaks its contract: %v", got.Type, err)
	}
	if v != nil {
		if err := json.Unmarshal(got.Payload, v); err != nil {
			s.t.Fatal(err)
		}
	}
	return got
}

// PayloadHas matches payloads whose top-level string field key is value,
// such as an event's "order_id".
func PayloadHas(key, value string) func(payload json.RawMessage) bool {
	return func(payload json.RawMessage) bool {
		var fields map[string]any
		return json.Unmarshal(payload, &fields) == nil && fields[key] == value
	}
}
