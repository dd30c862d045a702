package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/notification/internal/domain"
)

// DispatchDue delivers the notifications that are due and returns how many
// it handled. A delivered notification is marked sent and publishes
// notification.sent.v1 in the same transaction; a failed attempt is retried
// with backoff and given up after the configured attempts. A customer whose
// address is not known yet (user events still on their way) counts as a
// failed attempt, so it is retried too.
//
// Delivery is at least once towards the Sender: a crash after Send and
// before the commit sends again. The log sender makes that harmless.
func (s *Service) DispatchDue(ctx context.Context) (int, error) {
	now := s.now()
	n, err := s.store.Dispatch(ctx, now, s.cfg.BatchSize, func(ctx context.Context, n *domain.Notification, c domain.Contact, known bool) ([]outbox.Event, error) {
		return s.deliver(ctx, n, c, known, now)
	})
	if err != nil {
		return n, fmt.Errorf("dispatch notifications: %w", err)
	}
	return n, nil
}

func (s *Service) deliver(ctx context.Context, n *domain.Notification, c domain.Contact, known bool, now time.Time) ([]outbox.Event, error) {
	to := n.Recipient()
	if n.Audience() == domain.AudienceCustomer {
		to = c.Email
		if !known || to == "" {
			return nil, n.MarkAttemptFailed("no email address known for the customer yet", now, s.cfg.Retry)
		}
	}
	err := s.sender.Send(ctx, Message{NotificationID: n.ID(), Channel: n.Channel(), To: to, Subject: n.Subject(), Body: n.Body()})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err() // shutting down: not the recipient's fault
		}
		return nil, n.MarkAttemptFailed(err.Error(), now, s.cfg.Retry)
	}
	if err := n.MarkSent(to, now); err != nil {
		return nil, err
	}
	return []outbox.Event{{
		Type:        contracts.TypeNotificationSentV1,
		AggregateID: n.ID(),
		OccurredAt:  now,
		// Sent later than the triggering event was handled: name it as the
		// cause and continue its correlation explicitly.
		CausationID:   n.EventID(),
		CorrelationID: n.CorrelationID(),
		Payload: contracts.NotificationSentV1{
			NotificationID: n.ID(),
			Channel:        contracts.Channel(n.Channel()),
			Audience:       contracts.Audience(n.Audience()),
			UserID:         n.UserID(),
			Template:       n.Template(),
			TriggerType:    n.EventType(),
			TriggerID:      n.EventID(),
		},
	}}, nil
}

// RunDispatcher dispatches every interval, and at once again while a pass
// fills its batch, until ctx ends. Errors are logged by the caller through
// onError and retried at the next tick.
func (s *Service) RunDispatcher(ctx context.Context, interval time.Duration, onError func(error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.DispatchDue(ctx)
		if err != nil && !errors.Is(err, context.Canceled) && onError != nil {
			onError(err)
		}
		if err == nil && n >= s.cfg.BatchSize {
			continue // more may be due
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
