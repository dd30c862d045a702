-- +goose Up
-- One row per order: the order as placed, its saga state and what its
-- compensations achieved. Only the order service writes it, always in the
-- same transaction as the outbox rows (and, for replies, the inbox claim).
CREATE TABLE orders (
    id                   UUID PRIMARY KEY,
    user_id              UUID NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('awaiting_stock', 'awaiting_payment', 'confirmed',
                             'cancellation_requested', 'shipped', 'delivered', 'cancelled')),
    cancellation_reason  TEXT CHECK ((state = 'cancelled') = (cancellation_reason IS NOT NULL)),
    lines                JSONB NOT NULL,
    total_minor          BIGINT NOT NULL CHECK (total_minor >= 0),
    currency             TEXT NOT NULL,
    shipping_address     JSONB NOT NULL,
    -- The provider token is kept only until payment was requested.
    payment_token        TEXT,
    payment_deadline     TIMESTAMPTZ,
    payment_id           TEXT,
    payment_amount_minor BIGINT,
    payment_currency     TEXT,
    shipment_id          TEXT,
    refund_requested     BOOLEAN NOT NULL DEFAULT false,
    refunded             BOOLEAN NOT NULL DEFAULT false,
    stock_released       BOOLEAN NOT NULL DEFAULT false,
    stock_returned       BOOLEAN NOT NULL DEFAULT false,
    placed_at            TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    revision             INT NOT NULL CHECK (revision >= 1)
);

-- A customer's orders, newest first (the list endpoint's keyset).
CREATE INDEX orders_user_newest ON orders (user_id, placed_at DESC, id DESC);

-- The order's history; entries are only ever appended.
CREATE TABLE order_timeline (
    order_id UUID NOT NULL REFERENCES orders (id),
    seq      INT NOT NULL,
    type     TEXT NOT NULL,
    at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (order_id, seq)
);

-- +goose Down
DROP TABLE order_timeline;
DROP TABLE orders;
