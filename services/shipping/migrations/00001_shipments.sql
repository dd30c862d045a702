-- +goose Up
-- One shipment per order. due_at is when the carrier's next step is due
-- (pickup for a created shipment, delivery for a dispatched one); NULL once
-- final. The carrier loop polls it, so the delays survive restarts.
CREATE TABLE shipments (
    id             UUID PRIMARY KEY,
    order_id       UUID NOT NULL UNIQUE,
    user_id        UUID NOT NULL,
    carrier        TEXT NOT NULL,
    tracking       TEXT NOT NULL DEFAULT '',
    address        JSONB NOT NULL,
    lines          JSONB NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('created', 'dispatched', 'delivered', 'failed', 'cancelled')),
    failure_reason TEXT NOT NULL DEFAULT '',
    failure_detail TEXT NOT NULL DEFAULT '',
    due_at         TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    CHECK ((status IN ('created', 'dispatched')) = (due_at IS NOT NULL))
);
CREATE INDEX shipments_due_at ON shipments (due_at) WHERE due_at IS NOT NULL;

-- Every status a shipment reached, in order: its tracking history.
CREATE TABLE shipment_steps (
    shipment_id UUID NOT NULL REFERENCES shipments (id),
    seq         INT NOT NULL,
    status      TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (shipment_id, seq)
);

-- +goose Down
DROP TABLE shipment_steps;
DROP TABLE shipments;
