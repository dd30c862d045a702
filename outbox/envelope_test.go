package outbox

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The envelope is read from string headers; the broker's own headers that
// are not strings (a redelivery count, x-death tables) neither fail it nor
// reach it, and the AMQP properties stand in for a missing id or type.
func TestADeliverysEnvelopeComesFromItsHeaders(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 22, 6, 30, 0, 123000000, time.UTC)
	d := amqp.Delivery{
		Headers: amqp.Table{
			HeaderID: "m-1", HeaderType: "order.placed.v2", HeaderSource: "order", HeaderAggregateID: "o-1",
			HeaderCorrelationID: "c-1", HeaderCausationID: "m-0", HeaderTraceparent: "00-abc-def-01",
			HeaderOccurredAt: at.Format(time.RFC3339Nano), HeaderReplay: "1",
			"x-delivery-count": int64(3), "x-death": []any{amqp.Table{"count": int64(1)}},
		},
		Body:        []byte(`{"order_id":"o-1"}`),
		Redelivered: true,
	}
	m, err := deliveryToMessage(d)
	if err != nil {
		t.Fatal(err)
	}
	want := Message{ID: "m-1", Type: "order.placed.v2", Source: "order", AggregateID: "o-1", CorrelationID: "c-1",
		CausationID: "m-0", Traceparent: "00-abc-def-01", OccurredAt: at, Redelivered: true, Replayed: true}
	if m.ID != want.ID || m.Type != want.Type || m.Source != want.Source || m.AggregateID != want.AggregateID ||
		m.CorrelationID != want.CorrelationID || m.CausationID != want.CausationID || m.Traceparent != want.Traceparent ||
		!m.OccurredAt.Equal(at) || !m.Redelivered || !m.Replayed || string(m.Payload) != `{"order_id":"o-1"}` {
		t.Errorf("envelope %+v, want %+v with the body as payload", m, want)
	}

	m, err = deliveryToMessage(amqp.Delivery{MessageId: "m-2", Type: "cart.checked_out.v1", Headers: amqp.Table{HeaderAggregateID: int64(7)}})
	if err != nil || m.ID != "m-2" || m.Type != "cart.checked_out.v1" || m.AggregateID != "7" || m.Replayed {
		t.Errorf("from the properties: %+v, %v; want id m-2, its type, aggregate \"7\", not replayed", m, err)
	}
	if _, err := deliveryToMessage(amqp.Delivery{Headers: amqp.Table{HeaderType: "t.v1"}}); err == nil {
		t.Error("a delivery without an id was accepted")
	}
	if _, err := deliveryToMessage(amqp.Delivery{MessageId: "m-3"}); err == nil {
		t.Error("a delivery without a type was accepted")
	}
}
