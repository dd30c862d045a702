-- +goose Up
-- One payment per order. outcome_event_id is the event that announced the
-- decision; a repeated request re-announces exactly that event.
CREATE TABLE payments (
    id                 UUID PRIMARY KEY,
    order_id           UUID NOT NULL UNIQUE,
    user_id            UUID NOT NULL,
    amount_minor       BIGINT NOT NULL CHECK (amount_minor >= 0),
    currency           CHAR(3) NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'authorized', 'declined', 'refunded')),
    provider_reference TEXT NOT NULL DEFAULT '',
    decline_reason     TEXT NOT NULL DEFAULT '',
    outcome_event_id   UUID,
    decided_at         TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    CHECK ((status = 'pending') = (outcome_event_id IS NULL))
);
CREATE INDEX payments_user_id ON payments (user_id);

-- Every payment request received for a payment, with what it led to.
CREATE TABLE payment_attempts (
    payment_id UUID NOT NULL REFERENCES payments (id),
    request_id TEXT NOT NULL,
    outcome    TEXT NOT NULL CHECK (outcome IN ('authorized', 'declined', 'no_answer', 'repeated')),
    at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (payment_id, request_id)
);

-- At most one refund per payment, enforced here as well as in the domain.
CREATE TABLE refunds (
    id                 UUID PRIMARY KEY,
    payment_id         UUID NOT NULL UNIQUE REFERENCES payments (id),
    amount_minor       BIGINT NOT NULL CHECK (amount_minor >= 0),
    currency           CHAR(3) NOT NULL,
    reason             TEXT NOT NULL,
    provider_reference TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL
);

-- Every refund request received, including the no-ops (nothing captured,
-- already refunded, no payment), with its outcome.
CREATE TABLE refund_requests (
    request_id   TEXT PRIMARY KEY,
    order_id     UUID NOT NULL,
    payment_id   UUID,
    amount_minor BIGINT NOT NULL,
    currency     CHAR(3) NOT NULL,
    reason       TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('refunded', 'already_refunded', 'not_captured', 'no_payment')),
    at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX refund_requests_order_id ON refund_requests (order_id);

-- +goose Down
DROP TABLE refund_requests;
DROP TABLE refunds;
DROP TABLE payment_attempts;
DROP TABLE payments;
