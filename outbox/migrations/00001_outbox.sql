-- +goose Up
-- The messages table is watermill-sql's DefaultPostgreSQLSchema for the topic
-- "outbox", except that created_at is the UTC insert time (watermill uses the
-- session's local transaction start), which the relay reports as the
-- event's commit time for latency metrics.
CREATE TABLE IF NOT EXISTS watermill_outbox (
    "offset"       BIGSERIAL,
    uuid           VARCHAR(36) NOT NULL,
    created_at     TIMESTAMP NOT NULL DEFAULT (clock_timestamp() AT TIME ZONE 'UTC'),
    payload        JSON DEFAULT NULL,
    metadata       JSON DEFAULT NULL,
    transaction_id xid8 NOT NULL,
    PRIMARY KEY (transaction_id, "offset")
);
CREATE INDEX IF NOT EXISTS watermill_outbox_created_at ON watermill_outbox (created_at);

-- watermill-sql's DefaultPostgreSQLOffsetsAdapter table; the relay's cursor is
-- the row with consumer_group 'shopmesh-relay'.
CREATE TABLE IF NOT EXISTS watermill_offsets_outbox (
    consumer_group                VARCHAR(255) NOT NULL,
    offset_acked                  BIGINT,
    last_processed_transaction_id xid8 NOT NULL,
    PRIMARY KEY (consumer_group)
);
INSERT INTO watermill_offsets_outbox (consumer_group, offset_acked, last_processed_transaction_id)
VALUES ('shopmesh-relay', 0, '0') ON CONFLICT DO NOTHING;

-- Events to be written to the outbox at a later time (saga timeouts). The
-- scheduler moves due rows into watermill_outbox in one transaction.
CREATE TABLE IF NOT EXISTS outbox_scheduled (
    id       BIGSERIAL PRIMARY KEY,
    due_at   TIMESTAMPTZ NOT NULL,
    uuid     VARCHAR(36) NOT NULL,
    payload  JSON,
    metadata JSON
);
CREATE INDEX IF NOT EXISTS outbox_scheduled_due_at ON outbox_scheduled (due_at);

-- The idempotent inbox: a consumer claims (consumer, message_id) in the same
-- transaction as its effects.
CREATE TABLE IF NOT EXISTS inbox (
    consumer    TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    type        TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
CREATE INDEX IF NOT EXISTS inbox_received_at ON inbox (received_at);

-- Duplicates absorbed per consumer, kept in the database so that they survive
-- restarts and can be audited (Prometheus counters reset with the process).
CREATE TABLE IF NOT EXISTS inbox_duplicates (
    consumer TEXT PRIMARY KEY,
    count    BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS dead_letters (
    id           BIGSERIAL PRIMARY KEY,
    consumer     TEXT NOT NULL,
    queue        TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    type         TEXT NOT NULL,
    exchange     TEXT NOT NULL,
    routing_key  TEXT NOT NULL,
    headers      JSONB NOT NULL,
    payload      BYTEA NOT NULL,
    reason       TEXT NOT NULL,
    attempts     INT NOT NULL,
    failed_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    replayed_at  TIMESTAMPTZ,
    discarded_at TIMESTAMPTZ
);
-- One open dead letter per message and consumer: a redelivered poison message
-- updates its record instead of adding another.
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_open
    ON dead_letters (consumer, message_id) WHERE replayed_at IS NULL AND discarded_at IS NULL;

-- +goose Down
DROP TABLE IF EXISTS dead_letters;
DROP TABLE IF EXISTS inbox_duplicates;
DROP TABLE IF EXISTS inbox;
DROP TABLE IF EXISTS outbox_scheduled;
DROP TABLE IF EXISTS watermill_offsets_outbox;
DROP TABLE IF EXISTS watermill_outbox;
