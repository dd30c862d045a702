-- +goose Up
-- The customer read model: built only from events (user.* and order.*), so
-- it can be truncated and rebuilt by replaying them (see package customer).

-- One profile per user seen in any user event. registered_at is null until
-- user.registered.v1 arrives (a replay may bring an address change first);
-- address_at orders address changes that arrive out of order.
CREATE TABLE profiles (
    user_id        UUID PRIMARY KEY,
    email          TEXT NOT NULL DEFAULT '',
    name           TEXT NOT NULL DEFAULT '',
    registered_at  TIMESTAMPTZ,
    address        JSONB,
    address_at     TIMESTAMPTZ,
    deactivated_at TIMESTAMPTZ,
    CHECK ((address IS NULL) = (address_at IS NULL))
);

-- One entry per order in a customer's history. total is null until an event
-- carrying it arrives; placed_at is the placement time (or the earliest
-- event's until the placement arrives); updated_at is the latest step's time.
CREATE TABLE history_orders (
    order_id            UUID PRIMARY KEY,
    user_id             UUID NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'shipped', 'delivered', 'cancelled')),
    total_minor         BIGINT CHECK (total_minor >= 0),
    currency            CHAR(3),
    cancellation_reason TEXT NOT NULL DEFAULT '',
    placed_at           TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    CHECK ((total_minor IS NULL) = (currency IS NULL))
);
-- A customer's history, newest first (the API's keyset paging).
CREATE INDEX history_orders_by_user ON history_orders (user_id, placed_at DESC, order_id DESC);

-- Each lifecycle step of an order at most once.
CREATE TABLE history_timeline (
    order_id UUID NOT NULL REFERENCES history_orders (order_id),
    step     TEXT NOT NULL CHECK (step IN ('placed', 'confirmed', 'cancelled', 'shipped', 'delivered', 'completed')),
    at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (order_id, step)
);

-- +goose Down
DROP TABLE history_timeline;
DROP TABLE history_orders;
DROP TABLE profiles;
