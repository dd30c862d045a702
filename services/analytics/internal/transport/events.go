// Package transport connects the analytics service to the outside: the
// inbox consumer's handler (decoding every event strictly against its
// contract) and the administrators' report API (go-kit). It must not hold
// business rules or SQL.
package transport

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/analytics/internal/app"
	"github.com/shopmesh/shopmesh/services/analytics/internal/domain"
)

// Register registers one handler for every type the service consumes,
// every version. Unlike servicekit.Subscribe it binds the same handler to
// all of them: the application's rules, not the transport, decide what an
// event counts towards, and an event no rule reads is dead-lettered
// (app.ErrUnhandled).
func Register(c *outbox.Consumer, service string, svc *app.Service, inTx func(pgx.Tx) app.Tx) error {
	h := EventHandler(svc, inTx)
	for _, t := range servicekit.Consumes(service) {
		if err := c.Handle(t, h); err != nil {
			return err
		}
	}
	return nil
}

// EventHandler returns the inbox handler: it upcasts and decodes each
// message and adds it to the aggregates inside the consumer's transaction.
// What no retry can fix (unknown type, invalid payload, no rule, no
// occurrence time) is permanent and goes to the dead letters.
func EventHandler(svc *app.Service, inTx func(pgx.Tx) app.Tx) outbox.Handler {
	return func(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
		ev, err := Decode(msg)
		if err != nil {
			return outbox.Permanent(err)
		}
		if err := svc.Apply(ctx, inTx(tx), ev); err != nil {
			if errors.Is(err, app.ErrUnhandled) || errors.Is(err, domain.ErrInvalid) {
				return outbox.Permanent(err)
			}
			return err
		}
		return nil
	}
}

// Decode turns a message into an app.Event at the latest version of its
// type.
func Decode(msg outbox.Message) (app.Event, error) {
	typ, v, err := contracts.DecodeLatest(msg.Type, msg.Payload)
	if err != nil {
		return app.Event{}, fmt.Errorf("message %s: %w", msg.ID, err)
	}
	return app.Event{ID: msg.ID, Type: typ, OccurredAt: msg.OccurredAt, Payload: v}, nil
}
