// Package postgres stores the notification service's customer read model
// and notifications in PostgreSQL. Event handling writes through Tx, inside
// the consumer's transaction (which also holds the inbox claim); delivery
// and listing go through Store, which owns its transactions and writes
// notification state and outbox events together. It must not decide what
// to notify.
package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/internal/ids"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/notification/internal/app"
	"github.com/shopmesh/shopmesh/services/notification/internal/domain"
)

// Store is the notification service's storage.
type Store struct {
	pool   *pgxpool.Pool
	outbox *outbox.Outbox
}

var _ app.Store = (*Store)(nil)

// New returns a Store writing events through ob.
func New(pool *pgxpool.Pool, ob *outbox.Outbox) *Store {
	return &Store{pool: pool, outbox: ob}
}

// InTx returns the store's view inside tx, a consumer's transaction.
func (s *Store) InTx(tx pgx.Tx) app.Tx { return txStore{tx} }

type txStore struct{ tx pgx.Tx }

// Contact returns the user's contact. In a consumer's transaction the first
// lookup reads the contacts of every user its batch's messages name (a
// payload's user_id) in one round trip, and the transaction's later
// lookups are answered from what it read; a contact the transaction writes
// (Registered, Deactivated) is read again (see outbox.ReadBatched).
func (t txStore) Contact(ctx context.Context, userID string) (domain.Contact, bool, error) {
	key, ok := ids.Canonical(userID)
	if !ok {
		key = userID // the read fails, as it should
	}
	c, found, err := outbox.ReadBatched(ctx, contactsKey{}, key, userIDOf, func(users []string) (map[string]domain.Contact, error) {
		return readContacts(ctx, t.tx, users)
	})
	if err != nil {
		return domain.Contact{}, false, err
	}
	if !found {
		return domain.Contact{UserID: userID}, false, nil
	}
	c.UserID = userID
	return c, true, nil
}

// userIDOf is the user an event's payload names.
func userIDOf(p struct {
	UserID string `json:"user_id"`
}) (string, bool) {
	return ids.Canonical(p.UserID)
}

// contactsKey names the contacts a consumer transaction has read.
type contactsKey struct{}

// readContacts reads the contacts of users, by user.
func readContacts(ctx context.Context, tx pgx.Tx, users []string) (map[string]domain.Contact, error) {
	cond, arg := servicekit.KeysIn("user_id", "uuid", 1, users)
	rows, err := tx.Query(ctx, `SELECT user_id::text, email, name, deactivated_at FROM contacts WHERE `+cond, arg)
	if err != nil {
		return nil, fmt.Errorf("read contacts: %w", err)
	}
	found := make(map[string]domain.Contact, len(users))
	var (
		id            string
		email, name   *string
		deactivatedAt *time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &email, &name, &deactivatedAt}, func() error {
		c := domain.Contact{UserID: id, Deactivated: deactivatedAt != nil}
		if email != nil {
			c.Email = *email
		}
		if name != nil {
			c.Name = *name
		}
		found[id] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read contacts: %w", err)
	}
	return found, nil
}

// forget makes the transaction read userID's contact again.
func forget(ctx context.Context, userID string) {
	if key, ok := ids.Canonical(userID); ok {
		outbox.ForgetBatched[domain.Contact](ctx, contactsKey{}, key)
	}
	outbox.ForgetBatched[domain.Contact](ctx, contactsKey{}, userID)
}

func (t txStore) Registered(ctx context.Context, userID, email, name string, at time.Time) error {
	// A deactivation seen first (replay order) is kept.
	_, err := t.tx.Exec(ctx, `
		INSERT INTO contacts (user_id, email, name, registered_at, updated_at)
		VALUES ($1, $2, $3, $4, now())
		ON CONFLICT (user_id) DO UPDATE SET email = $2, name = $3, registered_at = $4, updated_at = now()`,
		userID, email, name, at)
	if err != nil {
		return fmt.Errorf("store contact %s: %w", userID, err)
	}
	forget(ctx, userID)
	return nil
}

func (t txStore) Deactivated(ctx context.Context, userID string, at time.Time) error {
	_, err := t.tx.Exec(ctx, `
		INSERT INTO contacts (user_id, deactivated_at, updated_at)
		VALUES ($1, $2, now())
		ON CONFLICT (user_id) DO UPDATE SET deactivated_at = coalesce(contacts.deactivated_at, $2), updated_at = now()`,
		userID, at)
	if err != nil {
		return fmt.Errorf("deactivate contact %s: %w", userID, err)
	}
	forget(ctx, userID)
	return nil
}

// Record adds n to the transaction's notifications, which are inserted in
// one statement before it commits (outside a consumer's transaction, at
// once). A notification whose event, recipient and channel are already
// stored, or come twice in one transaction, is left out: the first stays.
func (t txStore) Record(ctx context.Context, n *domain.Notification) error {
	return outbox.Accumulate(ctx, t.tx, recordsKey{}, func() *records { return &records{} }, func(r *records) { r.add(n) })
}

type recordsKey struct{}

// records are notifications waiting for one insert, as columns.
type records struct {
	ids, eventIDs, eventTypes, audiences, recipients, channels, templates []string
	subjects, bodies, statuses, correlations                              []string
	userIDs, orderIDs                                                     []*string
	createdAt, nextAttemptAt                                              []time.Time
	attempts                                                              []int32
}

func (r *records) add(n *domain.Notification) {
	r.ids = append(r.ids, n.ID())
	r.eventIDs = append(r.eventIDs, n.EventID())
	r.eventTypes = append(r.eventTypes, n.EventType())
	r.audiences = append(r.audiences, string(n.Audience()))
	r.userIDs = append(r.userIDs, nullable(n.UserID()))
	r.recipients = append(r.recipients, n.Recipient())
	r.channels = append(r.channels, string(n.Channel()))
	r.templates = append(r.templates, n.Template())
	r.subjects = append(r.subjects, n.Subject())
	r.bodies = append(r.bodies, n.Body())
	r.orderIDs = append(r.orderIDs, nullable(n.OrderID()))
	r.createdAt = append(r.createdAt, n.CreatedAt())
	r.statuses = append(r.statuses, string(n.Status()))
	r.attempts = append(r.attempts, int32(n.Attempts()))
	r.nextAttemptAt = append(r.nextAttemptAt, n.NextAttemptAt())
	r.correlations = append(r.correlations, n.CorrelationID())
}

var _ outbox.BatchDeferred = (*records)(nil)

// Flush inserts the notifications in the order they were recorded.
func (r *records) Flush(ctx context.Context, tx pgx.Tx) error {
	b := &pgx.Batch{}
	if err := r.QueueFlush(b); err != nil || b.Len() == 0 {
		return err
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("insert %d notifications: %w", len(r.ids), err)
	}
	return nil
}

// QueueFlush queues the insert of the notifications, in the order they were
// recorded, to travel with the consumer transaction's COMMIT.
func (r *records) QueueFlush(b *pgx.Batch) error {
	if len(r.ids) == 0 {
		return nil
	}
	b.Queue(`
		INSERT INTO notifications (id, event_id, event_type, audience, user_id, recipient, channel, template,
		                           subject, body, order_id, created_at, status, attempts, next_attempt_at, correlation_id)
		SELECT n.id, n.event_id, n.event_type, n.audience, n.user_id, n.recipient, n.channel, n.template,
		       n.subject, n.body, n.order_id, n.created_at, n.status, n.attempts, n.next_attempt_at, n.correlation_id
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::text[], $8::text[],
		            $9::text[], $10::text[], $11::uuid[], $12::timestamptz[], $13::text[], $14::int[], $15::timestamptz[], $16::text[])
		     WITH ORDINALITY AS n(id, event_id, event_type, audience, user_id, recipient, channel, template,
		                          subject, body, order_id, created_at, status, attempts, next_attempt_at, correlation_id, i)
		ORDER BY n.i
		ON CONFLICT ON CONSTRAINT notifications_once DO NOTHING`,
		r.ids, r.eventIDs, r.eventTypes, r.audiences, r.userIDs, r.recipients, r.channels, r.templates,
		r.subjects, r.bodies, r.orderIDs, r.createdAt, r.statuses, r.attempts, r.nextAttemptAt, r.correlations)
	return nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

const columns = `n.id::text, n.event_id, n.event_type, n.audience, coalesce(n.user_id::text, ''), n.recipient,
	n.channel, n.template, n.subject, n.body, coalesce(n.order_id::text, ''), n.created_at, n.status,
	n.attempts, n.next_attempt_at, n.last_error, n.to_address, n.sent_at, n.correlation_id`

func scanNotification(row pgx.Row, extra ...any) (*domain.Notification, error) {
	var (
		s                         domain.Stored
		audience, channel, status string
		sentAt                    *time.Time
	)
	dest := append([]any{&s.ID, &s.EventID, &s.EventType, &audience, &s.UserID, &s.Recipient, &channel,
		&s.Template, &s.Subject, &s.Body, &s.OrderID, &s.CreatedAt, &status, &s.Attempts, &s.NextAttemptAt,
		&s.LastError, &s.ToAddress, &sentAt, &s.CorrelationID}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, fmt.Errorf("read notification: %w", err)
	}
	s.Audience, s.Channel, s.Status = domain.Audience(audience), domain.Channel(channel), domain.Status(status)
	if s.Audience == domain.AudienceStaff {
		s.StaffAddress = s.Recipient
	}
	if sentAt != nil {
		s.SentAt = *sentAt
	}
	return domain.FromDatabase(s)
}

// Dispatch locks due pending notifications and stores what fn did to each.
func (s *Store) Dispatch(ctx context.Context, now time.Time, limit int, fn app.DispatchFunc) (int, error) {
	handled := 0
	err := s.outbox.WithTx(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT `+columns+`, c.user_id IS NOT NULL, coalesce(c.email, ''), coalesce(c.name, ''), c.deactivated_at IS NOT NULL
			FROM notifications n LEFT JOIN contacts c ON c.user_id = n.user_id
			WHERE n.status = 'pending' AND n.next_attempt_at <= $1
			ORDER BY n.next_attempt_at, n.id
			LIMIT $2
			FOR UPDATE OF n SKIP LOCKED`, now, limit)
		if err != nil {
			return fmt.Errorf("select due notifications: %w", err)
		}
		type due struct {
			n     *domain.Notification
			c     domain.Contact
			known bool
		}
		var batch []due
		for rows.Next() {
			var d due
			d.n, err = scanNotification(rows, &d.known, &d.c.Email, &d.c.Name, &d.c.Deactivated)
			if err != nil {
				rows.Close()
				return err
			}
			d.c.UserID = d.n.UserID()
			batch = append(batch, d)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("select due notifications: %w", err)
		}
		// Any failure rolls back the whole batch, so the updates and the
		// events can be written after fn has seen every notification: two
		// statements in one round trip for the batch instead of two per
		// notification. Each event carries its own correlation, so
		// publishing them together changes nothing downstream.
		var updates outcomes
		var events []outbox.Event
		for _, d := range batch {
			evs, err := fn(ctx, d.n, d.c, d.known)
			if err != nil {
				return err
			}
			updates.add(d.n)
			events = append(events, evs...)
		}
		b := &pgx.Batch{}
		updates.queue(b)
		if err := s.outbox.Queue(ctx, b, events...); err != nil {
			return err
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("store the outcomes of %d due notifications: %w", len(batch), err)
		}
		handled = len(batch)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return handled, nil
}

// outcomes are what delivery attempts did to notifications, as columns.
type outcomes struct {
	ids, statuses, lastErrors, toAddresses []string
	attempts                               []int32
	nextAttemptAt                          []time.Time
	sentAt                                 []*time.Time
}

func (o *outcomes) add(n *domain.Notification) {
	var sentAt *time.Time
	if !n.SentAt().IsZero() {
		t := n.SentAt()
		sentAt = &t
	}
	o.ids = append(o.ids, n.ID())
	o.statuses = append(o.statuses, string(n.Status()))
	o.attempts = append(o.attempts, int32(n.Attempts()))
	o.nextAttemptAt = append(o.nextAttemptAt, n.NextAttemptAt())
	o.lastErrors = append(o.lastErrors, n.LastError())
	o.toAddresses = append(o.toAddresses, n.ToAddress())
	o.sentAt = append(o.sentAt, sentAt)
}

// queue queues the statement that stores the outcomes.
func (o *outcomes) queue(b *pgx.Batch) {
	if len(o.ids) == 0 {
		return
	}
	b.Queue(`
		UPDATE notifications AS n SET status = u.status, attempts = u.attempts, next_attempt_at = u.next_attempt_at,
		       last_error = u.last_error, to_address = u.to_address, sent_at = u.sent_at
		FROM unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[], $5::text[], $6::text[], $7::timestamptz[])
		     AS u(id, status, attempts, next_attempt_at, last_error, to_address, sent_at)
		WHERE n.id = u.id`,
		o.ids, o.statuses, o.attempts, o.nextAttemptAt, o.lastErrors, o.toAddresses, o.sentAt)
}

// List returns a customer's notifications, newest first, after before.
func (s *Store) List(ctx context.Context, userID, before string, limit int) ([]*domain.Notification, error) {
	var cursor *string
	if before != "" {
		cursor = &before
	}
	rows, err := s.pool.Query(ctx, `
		SELECT `+columns+`
		FROM notifications n
		WHERE n.user_id = $1
		  AND ($2::uuid IS NULL OR (n.created_at, n.id) < (
		      SELECT p.created_at, p.id FROM notifications p WHERE p.id = $2::uuid AND p.user_id = $1))
		ORDER BY n.created_at DESC, n.id DESC
		LIMIT $3`, userID, cursor, limit)
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	defer rows.Close()
	var out []*domain.Notification
	for rows.Next() {
		n, err := scanNotification(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	return out, nil
}
