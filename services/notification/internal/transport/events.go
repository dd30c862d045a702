// Package transport connects the notification service to the outside: the
// inbox consumer's handler (decoding events strictly against their
// contracts) and the HTTP API (go-kit). It must not hold business rules.
package transport

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/notification/internal/app"
)

// Consumes returns the event types the registry lists service as a consumer
// of: exactly what its inbox handles. EventHandler is bound to all of them
// (not through servicekit.Subscribe): the application's rules decide who is
// notified of what, and an event no rule reads is dead-lettered.
func Consumes(service string) []string { return servicekit.Consumes(service) }

// EventHandler returns the inbox handler: it upcasts and decodes each
// message and hands it to svc inside the consumer's transaction. What no
// retry can fix (unknown type, invalid payload, no rule) is permanent and
// goes to the dead letters.
func EventHandler(svc *app.Service, inTx func(pgx.Tx) app.Tx) outbox.Handler {
	return func(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
		ev, err := Decode(msg)
		if err != nil {
			return outbox.Permanent(err)
		}
		if err := svc.Handle(ctx, inTx(tx), ev); err != nil {
			if errors.Is(err, app.ErrUnhandled) {
				return outbox.Permanent(err)
			}
			return err
		}
		return nil
	}
}

// Decode turns a message into an app.Event at the latest version of its type.
func Decode(msg outbox.Message) (app.Event, error) {
	typ, v, err := contracts.DecodeLatest(msg.Type, msg.Payload)
	if err != nil {
		return app.Event{}, fmt.Errorf("message %s: %w", msg.ID, err)
	}
	return app.Event{ID: msg.ID, Type: typ, OccurredAt: msg.OccurredAt, Payload: v}, nil
}
