package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
)

// Envelope metadata keys. They are stored in the outbox row's metadata and
// travel as AMQP headers (id, type, source, correlation id and timestamp are
// also set as the matching AMQP properties).
const (
	HeaderID            = "id"
	HeaderType          = "type"
	HeaderSource        = "source"
	HeaderAggregateID   = "aggregate_id"
	HeaderOccurredAt    = "occurred_at"
	HeaderCorrelationID = "correlation_id"
	HeaderCausationID   = "causation_id"
	HeaderTraceparent   = "traceparent"
	// HeaderCommittedAt is set by the relay: the outbox row's insert time,
	// the start of end-to-end delivery latency.
	HeaderCommittedAt = "x-outbox-committed-at"
	// HeaderReplay marks a message re-delivered by replay or dead-letter replay.
	HeaderReplay = "x-shopmesh-replay"
)

// typePattern is `<service>.<fact>.v<N>`; the first segment names the
// producing service, whose exchange carries the event.
var typePattern = regexp.MustCompile(`^([a-z][a-z0-9_]*)\.([a-z][a-z0-9_.]*)\.v([1-9][0-9]*)$`)

// ProducerOf returns the service that produces events of the given type.
func ProducerOf(eventType string) (string, error) {
	m := typePattern.FindStringSubmatch(eventType)
	if m == nil {
		return "", fmt.Errorf("event type %q is not <service>.<fact>.v<N>", eventType)
	}
	return m[1], nil
}

// Event is one fact to publish. Payload is marshalled to JSON unless it is
// already a json.RawMessage or []byte holding JSON.
type Event struct {
	// ID is the deduplication key; a UUIDv7 is generated when empty.
	ID string
	// Type is `<service>.<fact>.v<N>` and must name the publishing service.
	Type string
	// AggregateID is the ordering key: events of one aggregate are delivered
	// in commit order.
	AggregateID string
	// OccurredAt defaults to now.
	OccurredAt time.Time
	Payload    any
	// CorrelationID and CausationID, when set, replace those carried by the
	// context: for an event published later, outside the handler of the
	// message that caused it (a dispatcher, a scheduled job), that names its
	// cause explicitly.
	CorrelationID string
	CausationID   string
}

// Message is a delivered event with its envelope.
type Message struct {
	ID            string
	Type          string
	Source        string
	AggregateID   string
	OccurredAt    time.Time
	CorrelationID string
	CausationID   string
	Traceparent   string
	Payload       json.RawMessage
	// Redelivered is the broker's flag: the message may have been seen before.
	Redelivered bool
	// Replayed is true for history or dead-letter replays.
	Replayed bool
}

// Decode unmarshals the payload into v. A payload that does not decode is a
// permanent error: retrying cannot fix it, so the message is dead-lettered.
func (m Message) Decode(v any) error {
	if err := json.Unmarshal(m.Payload, v); err != nil {
		return Permanent(fmt.Errorf("decode %s %s: %w", m.Type, m.ID, err))
	}
	return nil
}

// NewID returns a new message id (UUIDv7: time-ordered, so inbox and outbox
// indexes stay append-mostly).
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// Only fails when the random source fails; v4 is still unique.
		return uuid.NewString()
	}
	return id.String()
}

type ctxKey int

const (
	correlationKey ctxKey = iota
	causationKey
	deferredKey
)

// WithCorrelation returns a context whose published events carry the given
// correlation id (for example the HTTP request id that started a flow).
func WithCorrelation(ctx context.Context, correlationID string) context.Context {
	return context.WithValue(ctx, correlationKey, correlationID)
}

// CorrelationID returns the correlation id carried by ctx, if any.
func CorrelationID(ctx context.Context) string {
	s, _ := ctx.Value(correlationKey).(string)
	return s
}

// withCausation marks events published under ctx as caused by message id.
func withCausation(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, causationKey, id)
}

func causationID(ctx context.Context) string {
	s, _ := ctx.Value(causationKey).(string)
	return s
}

// PermanentError marks a failure that retrying cannot fix (bad payload,
// unknown version, a rule the message breaks). The consumer dead-letters it
// at once instead of retrying.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError (nil stays nil).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err is or wraps a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
