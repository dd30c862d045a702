// Package domain holds the notification service's rules: what a
// notification is and how its delivery advances (pending, sent, or failed
// after bounded retries), who may receive which template, and how subjects
// and bodies are rendered from templates.
//
// It is pure: no database, no broker, no sending. It must not know event
// contracts; the app translates events into template data.
package domain

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Audience is who a notification is for.
type Audience string

// Audiences.
const (
	AudienceCustomer Audience = "customer"
	AudienceStaff    Audience = "staff"
)

// Channel is how a notification is delivered.
type Channel string

// Channels. Only email is used: accounts carry no phone numbers yet.
const (
	ChannelEmail Channel = "email"
	ChannelSMS   Channel = "sms"
)

// Status is where a notification's delivery stands.
type Status string

// Statuses. A notification is recorded pending, then sent, or failed once
// its attempts are exhausted.
const (
	StatusPending Status = "pending"
	StatusSent    Status = "sent"
	StatusFailed  Status = "failed"
)

// ErrNotPending is returned when a finished notification is sent again.
var ErrNotPending = errors.New("notification is not pending")

// Notification is one message to one recipient on one channel, caused by
// one event. (EventID, Recipient, Channel) identifies it: an event never
// notifies the same recipient twice on the same channel.
type Notification struct {
	id      string
	eventID string
	// correlationID is the triggering event's correlation id.
	correlationID string
	eventType     string
	audience      Audience
	userID        string // the customer; empty for staff
	recipient     string // the customer's user id, or the staff address
	channel       Channel
	template      string
	subject       string
	body          string
	orderID       string
	createdAt     time.Time

	status        Status
	attempts      int
	nextAttemptAt time.Time
	lastError     string
	toAddress     string
	sentAt        time.Time
}

// Draft is what a new notification is made of.
type Draft struct {
	ID, EventID, EventType string
	Audience               Audience
	// UserID is the customer (AudienceCustomer only).
	UserID string
	// StaffAddress is the recipient of a staff notification.
	StaffAddress string
	Channel      Channel
	Template     string
	Subject      string
	Body         string
	OrderID      string
	// CorrelationID is the triggering event's correlation id (may be empty
	// for notifications recorded before it was kept).
	CorrelationID string
}

// New returns a pending notification, due at once.
func New(d Draft, now time.Time) (*Notification, error) {
	n := &Notification{
		id: d.ID, eventID: d.EventID, eventType: d.EventType, audience: d.Audience, userID: d.UserID,
		channel: d.Channel, template: d.Template, subject: d.Subject, body: d.Body, orderID: d.OrderID,
		correlationID: d.CorrelationID, createdAt: now.UTC(), status: StatusPending, nextAttemptAt: now.UTC(),
	}
	switch d.Audience {
	case AudienceCustomer:
		n.recipient = d.UserID
	case AudienceStaff:
		n.recipient = d.StaffAddress
	}
	if err := n.check(); err != nil {
		return nil, err
	}
	return n, nil
}

// Stored is a notification as the database holds it.
type Stored struct {
	Draft
	Recipient     string
	CreatedAt     time.Time
	Status        Status
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	ToAddress     string
	SentAt        time.Time
}

// FromDatabase rebuilds a stored notification, checking it as New does.
func FromDatabase(s Stored) (*Notification, error) {
	n := &Notification{
		id: s.ID, eventID: s.EventID, eventType: s.EventType, audience: s.Audience, userID: s.UserID,
		recipient: s.Recipient, channel: s.Channel, template: s.Template, subject: s.Subject, body: s.Body,
		orderID: s.OrderID, correlationID: s.CorrelationID, createdAt: s.CreatedAt.UTC(), status: s.Status, attempts: s.Attempts,
		nextAttemptAt: s.NextAttemptAt.UTC(), lastError: s.LastError, toAddress: s.ToAddress,
	}
	if !s.SentAt.IsZero() {
		n.sentAt = s.SentAt.UTC()
	}
	if err := n.check(); err != nil {
		return nil, fmt.Errorf("stored notification %s: %w", s.ID, err)
	}
	switch {
	case n.status != StatusPending && n.status != StatusSent && n.status != StatusFailed:
		return nil, fmt.Errorf("stored notification %s: unknown status %q", s.ID, n.status)
	case (n.status == StatusSent) != !n.sentAt.IsZero():
		return nil, fmt.Errorf("stored notification %s: status %s with sent time %v", s.ID, n.status, n.sentAt)
	}
	return n, nil
}

func (n *Notification) check() error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"id", n.id}, {"event id", n.eventID}, {"event type", n.eventType}, {"recipient", n.recipient},
		{"template", n.template}, {"subject", n.subject}, {"body", n.body},
	} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("notification: %s required", strings.Join(missing, ", "))
	}
	switch {
	case n.audience != AudienceCustomer && n.audience != AudienceStaff:
		return fmt.Errorf("notification: unknown audience %q", n.audience)
	case (n.audience == AudienceCustomer) != (n.userID != ""):
		return errors.New("notification: a user id is required for, and only for, a customer")
	case n.channel != ChannelEmail && n.channel != ChannelSMS:
		return fmt.Errorf("notification: unknown channel %q", n.channel)
	case strings.ContainsAny(n.subject, "\r\n"):
		return errors.New("notification: subject must be one line")
	}
	return nil
}

func (n *Notification) ID() string      { return n.id }
func (n *Notification) EventID() string { return n.eventID }

// CorrelationID is the triggering event's correlation id.
func (n *Notification) CorrelationID() string    { return n.correlationID }
func (n *Notification) EventType() string        { return n.eventType }
func (n *Notification) Audience() Audience       { return n.audience }
func (n *Notification) UserID() string           { return n.userID }
func (n *Notification) Recipient() string        { return n.recipient }
func (n *Notification) Channel() Channel         { return n.channel }
func (n *Notification) Template() string         { return n.template }
func (n *Notification) Subject() string          { return n.subject }
func (n *Notification) Body() string             { return n.body }
func (n *Notification) OrderID() string          { return n.orderID }
func (n *Notification) CreatedAt() time.Time     { return n.createdAt }
func (n *Notification) Status() Status           { return n.status }
func (n *Notification) Attempts() int            { return n.attempts }
func (n *Notification) NextAttemptAt() time.Time { return n.nextAttemptAt }
func (n *Notification) LastError() string        { return n.lastError }
func (n *Notification) ToAddress() string        { return n.toAddress }
func (n *Notification) SentAt() time.Time        { return n.sentAt }

// Retry is how failed deliveries are retried.
type Retry struct {
	// MaxAttempts is the number of delivery attempts before giving up.
	MaxAttempts int
	// Backoff is the delay after the first failure; it doubles after each
	// further failure up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
}

// MarkSent records a successful delivery to address.
func (n *Notification) MarkSent(address string, now time.Time) error {
	if n.status != StatusPending {
		return ErrNotPending
	}
	n.attempts++
	n.status = StatusSent
	n.toAddress = address
	n.sentAt = now.UTC()
	n.lastError = ""
	return nil
}

// MarkAttemptFailed records a failed delivery: the notification is due
// again after a backoff, or failed for good once r.MaxAttempts are spent.
func (n *Notification) MarkAttemptFailed(reason string, now time.Time, r Retry) error {
	if n.status != StatusPending {
		return ErrNotPending
	}
	n.attempts++
	n.lastError = reason
	if n.attempts >= r.MaxAttempts {
		n.status = StatusFailed
		return nil
	}
	delay := r.Backoff
	for i := 1; i < n.attempts && delay < r.MaxBackoff; i++ {
		delay *= 2
	}
	n.nextAttemptAt = now.UTC().Add(min(delay, r.MaxBackoff))
	return nil
}

// Contact is what the service knows about a customer, from user events.
type Contact struct {
	UserID string
	Email  string
	Name   string
	// Deactivated accounts receive only transactional notifications.
	Deactivated bool
}

// Receives reports whether a customer notification from template t goes
// to contact c: a deactivated account still hears about its orders, money
// and account, but nothing promotional. An unknown customer (the user
// events have not arrived yet) is notified; the address is resolved when
// sending.
func Receives(t *Template, c Contact, known bool) bool {
	if !known || !c.Deactivated {
		return true
	}
	return t.Transactional
}
