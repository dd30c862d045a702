// Package outbox is the messaging library every shopmesh service uses: a
// transactional outbox, a relay to RabbitMQ, an idempotent inbox for
// consumers, dead letters, replay of retained history, retention and metrics.
//
// The promise it keeps: an event written with [Outbox.Publish] reaches the
// broker if and only if the caller's transaction commits, and a [Consumer]
// applies each message to its database at most once however often the broker
// delivers it. Together that is effectively-once processing.
//
// Storage is watermill-sql's PostgreSQL layout: events are rows of the
// watermill_outbox table (uuid, payload, metadata, transaction_id xid8) written
// inside the caller's pgx transaction with the insert watermill-sql's
// publisher runs (its PostgreSQL schema adapter builds it), and the
// relay's cursor is the "shopmesh-relay" row of watermill_offsets_outbox. The
// relay itself is not watermill's forwarder: the forwarder publishes one
// message at a time without publisher-confirm deadlines and without mandatory
// routing, and measured at a few hundred events a second on a 2-core machine.
// [Relay] reads the same table in the same commit order (the xid8 cursor:
// rows become visible only below pg_snapshot_xmin, or, for the reads after
// two in a row so held back, below the oldest transaction still running in
// the outbox's own database, so a slow transaction can never be skipped),
// publishes a batch with confirms and mandatory routing, and advances the
// cursor only after every confirm arrived.
//
// The package must not know any service's domain. It never decides what an
// event means; it only moves, deduplicates and records messages.
package outbox
