package servicekit

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
)

// EventHandler applies one consumed event at the latest version of its type:
// payload is msg.Payload upcast by contracts.Upcast, not yet decoded. It
// runs in tx, the transaction that holds the message's inbox claim.
type EventHandler func(ctx context.Context, tx pgx.Tx, msg outbox.Message, payload []byte) error

// Registrar takes the handler of one event type; *outbox.Consumer is one.
type Registrar interface {
	Handle(eventType string, h outbox.Handler) error
}

// Consumes returns the event types the contracts registry lists service as
// a consumer of, every version, in the registry's order: exactly the types
// its inbox queue is bound to.
func Consumes(service string) []string {
	var types []string
	for _, t := range contracts.Registry() {
		if slices.Contains(t.Consumers, service) {
			types = append(types, t.Name)
		}
	}
	return types
}

// Subscribe registers with c one handler for every type the contracts
// registry lists service as a consumer of, every version of it: handlers
// are keyed by the latest version of each type, and a message of any
// version is upcast to it before the handler runs. A payload that cannot be
// upcast is permanent (dead-lettered).
//
// Subscribe refuses a listed type whose latest version has no handler, and
// a handler for a type the registry does not list service as consuming, so
// a registry change cannot go unhandled and a handler cannot wait for
// messages its queue is never bound to.
func Subscribe(c Registrar, service string, handlers map[string]EventHandler) error {
	latestOf := map[string]string{} // family -> its latest version's name
	for _, t := range contracts.Registry() {
		fam := family(t.Name)
		if prev, ok := latestOf[fam]; !ok || version(prev) < t.Version {
			latestOf[fam] = t.Name
		}
	}
	consumed := Consumes(service)
	for _, name := range consumed {
		latest := latestOf[family(name)]
		h, ok := handlers[latest]
		if !ok {
			return fmt.Errorf("%s consumes %s but has no handler for %s", service, name, latest)
		}
		err := c.Handle(name, func(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
			t, payload, err := contracts.Upcast(msg.Type, msg.Payload)
			if err != nil {
				return outbox.Permanent(err)
			}
			if t != latest {
				return outbox.Permanent(fmt.Errorf("%s upcast to %s, want %s", msg.Type, t, latest))
			}
			return h(ctx, tx, msg, payload)
		})
		if err != nil {
			return err
		}
	}
	for t := range handlers {
		if !slices.Contains(consumed, t) {
			return fmt.Errorf("%s has a handler for %s, which the registry does not list it as consuming", service, t)
		}
	}
	return nil
}

// family is an event type's name without its version: order.placed.v2 is
// of family order.placed.
func family(name string) string {
	i := strings.LastIndex(name, ".v")
	if i < 0 {
		return name
	}
	return name[:i]
}

// version is the N of a name ending in .v<N>.
func version(name string) int {
	n, _ := strconv.Atoi(name[strings.LastIndex(name, ".v")+2:])
	return n
}

// Decode unmarshals the payload Subscribe handed a handler into v. Subscribe
// has already validated it against its schema while upcasting it (duplicate
// and case-variant keys included), so it is not validated a second time on
// every message.
func Decode(payload []byte, v any) error {
	if err := json.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("decode payload: %w", err)
	}
	return nil
}

// DecodeAs returns a decoder of eventType's payloads, as Subscribe hands
// them to a handler, into E. Decoding does not validate again, so the
// pairing of E with eventType is checked here instead, once: DecodeAs
// panics when E is not the contract struct the registry has for eventType,
// a wiring mistake that then stops the service at its start.
func DecodeAs[E any](eventType string) func(payload []byte) (E, error) {
	matched := false
	for _, t := range contracts.Registry() {
		if t.Name == eventType {
			_, matched = t.New().(*E)
		}
	}
	if !matched {
		panic(fmt.Sprintf("servicekit: %T is not the contract of %s", *new(E), eventType))
	}
	return func(payload []byte) (E, error) {
		var e E
		err := Decode(payload, &e)
		return e, err
	}
}

// Typed returns the handler of eventType (the latest version of its family)
// that decodes the payload Subscribe hands it into E, the type's contract
// struct, and applies it. The payload was validated while upcasting, so it
// is not validated again; one that does not decode is permanent. Like
// DecodeAs, Typed panics when E is not eventType's contract struct.
func Typed[E any](eventType string, apply func(ctx context.Context, tx pgx.Tx, msg outbox.Message, e E) error) EventHandler {
	decode := DecodeAs[E](eventType)
	return func(ctx context.Context, tx pgx.Tx, msg outbox.Message, payload []byte) error {
		e, err := decode(payload)
		if err != nil {
			return outbox.Permanent(err)
		}
		return apply(ctx, tx, msg, e)
	}
}
