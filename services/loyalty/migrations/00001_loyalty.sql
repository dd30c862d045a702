-- +goose Up
-- One row per user the service has seen: a membership in the enrolment saga
-- (enrolling -> active, or enrolling -> bonus_failed -> rolled_back), or a
-- user seen only through a deactivation (not_enrolled). balance is the sum
-- of the user's ledger, kept here so an award reads and writes one row.
CREATE TABLE members (
    user_id     UUID PRIMARY KEY,
    email       TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL CHECK (status IN ('enrolling', 'active', 'bonus_failed', 'rolled_back', 'not_enrolled')),
    frozen      BOOLEAN NOT NULL DEFAULT false,
    balance     INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),
    fail_reason TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- The points ledger: credits only, never updated. Points for an order are
-- awarded exactly once (unique order and reason), and each user gets at
-- most one enrolment bonus, whatever the broker redelivers or producers
-- re-announce.
CREATE TABLE ledger (
    id       BIGSERIAL PRIMARY KEY,
    user_id  UUID NOT NULL REFERENCES members (user_id),
    points   INTEGER NOT NULL CHECK (points > 0),
    reason   TEXT NOT NULL CHECK (reason IN ('enrolment_bonus', 'order_completed')),
    order_id UUID,
    at       TIMESTAMPTZ NOT NULL,
    CHECK ((reason = 'order_completed') = (order_id IS NOT NULL))
);
CREATE UNIQUE INDEX ledger_once_per_order ON ledger (order_id, reason) WHERE order_id IS NOT NULL;
CREATE UNIQUE INDEX ledger_one_enrolment_bonus ON ledger (user_id) WHERE reason = 'enrolment_bonus';
CREATE INDEX ledger_by_user ON ledger (user_id, at DESC, id DESC);

-- +goose Down
DROP TABLE ledger;
DROP TABLE members;
