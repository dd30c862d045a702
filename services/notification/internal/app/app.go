// Package app holds the notification service's use cases: turning events
// into notifications (which template, for whom, exactly once), delivering
// pending notifications through a Sender, and listing a customer's own
// notifications. It must not know SQL, HTTP or the wire format of events.
package app

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"time"

	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/notification/internal/domain"
)

// ErrUnhandled wraps what retrying an event cannot fix: a type with no
// notification rule, or a template that does not render. The event adapter
// dead-letters such messages.
var ErrUnhandled = errors.New("event cannot be turned into notifications")

// ErrUnauthenticated is returned to a caller without an identity.
var ErrUnauthenticated = errors.New("authentication required")

// Event is a decoded event: Payload is a pointer to its contracts struct at
// the latest version.
type Event struct {
	ID         string
	Type       string
	OccurredAt time.Time
	Payload    any
}

// Tx is the store inside the transaction that also claims the event in the
// inbox: everything it writes commits with the claim or not at all.
type Tx interface {
	// Contact returns what is known about a customer.
	Contact(ctx context.Context, userID string) (c domain.Contact, known bool, err error)
	// Registered records a customer's email and name.
	Registered(ctx context.Context, userID, email, name string, at time.Time) error
	// Deactivated marks a customer's account deactivated.
	Deactivated(ctx context.Context, userID string, at time.Time) error
	// Record stores n unless a notification with its event, recipient and
	// channel exists (the first one stays), by the end of the transaction.
	Record(ctx context.Context, n *domain.Notification) error
}

// DispatchFunc delivers one due notification (changing its state) and
// returns the events to publish with the change.
type DispatchFunc func(ctx context.Context, n *domain.Notification, c domain.Contact, known bool) ([]outbox.Event, error)

// Store keeps notifications outside event handling.
type Store interface {
	// Dispatch locks up to limit pending notifications due at now (skipping
	// ones another dispatcher holds), calls fn for each with the customer's
	// contact, and stores the results and fn's events in one transaction.
	// It returns how many it handled.
	Dispatch(ctx context.Context, now time.Time, limit int, fn DispatchFunc) (int, error)
	// List returns up to limit of the user's notifications, newest first,
	// starting after the notification before (none: from the newest).
	List(ctx context.Context, userID, before string, limit int) ([]*domain.Notification, error)
}

// Message is one notification to deliver.
type Message struct {
	NotificationID string
	Channel        domain.Channel
	To             string
	Subject        string
	Body           string
}

// Sender delivers messages (email, SMS). A returned error is a failed
// attempt, retried with backoff.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Config are the use cases' settings.
type Config struct {
	// StaffEmail receives staff alerts; empty disables them.
	StaffEmail string
	// Retry bounds delivery attempts.
	Retry domain.Retry
	// BatchSize is the most notifications one dispatch pass handles.
	BatchSize int
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.StaffEmail != "" {
		if a, err := mail.ParseAddress(c.StaffEmail); err != nil || a.Address != c.StaffEmail {
			errs = append(errs, fmt.Errorf("staff email %q is not a plain email address", c.StaffEmail))
		}
	}
	if c.Retry.MaxAttempts < 1 {
		errs = append(errs, errors.New("max delivery attempts must be at least 1"))
	}
	if c.Retry.Backoff <= 0 || c.Retry.MaxBackoff < c.Retry.Backoff {
		errs = append(errs, errors.New("retry backoff must be positive and at most the maximum backoff"))
	}
	if c.BatchSize < 1 {
		errs = append(errs, errors.New("batch size must be at least 1"))
	}
	return errors.Join(errs...)
}

// Service is the notification service's use cases.
type Service struct {
	store     Store
	sender    Sender
	templates *domain.Templates
	cfg       Config
	now       func() time.Time
	newID     func() string
}

// NewService wires the use cases; now and newID default to time.Now and
// outbox.NewID.
func NewService(store Store, sender Sender, templates *domain.Templates, cfg Config, now func() time.Time, newID func() string) (*Service, error) {
	if store == nil || sender == nil || templates == nil {
		return nil, errors.New("notification service: store, sender and templates are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	if newID == nil {
		newID = outbox.NewID
	}
	return &Service{store: store, sender: sender, templates: templates, cfg: cfg, now: now, newID: newID}, nil
}
