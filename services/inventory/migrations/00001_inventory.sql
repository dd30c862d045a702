-- +goose Up
-- Stock of one product. The CHECK constraints restate the domain's invariants
-- so that no code path, however wrong, can store impossible levels:
-- on_hand >= 0, reserved >= 0, reserved <= on_hand (available = on_hand -
-- reserved is therefore never negative and is not stored).
CREATE TABLE stock (
    product_id uuid PRIMARY KEY,
    sku        text NOT NULL CHECK (sku <> ''),
    on_hand    integer NOT NULL,
    reserved   integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stock_on_hand_not_negative CHECK (on_hand >= 0),
    CONSTRAINT stock_reserved_not_negative CHECK (reserved >= 0),
    CONSTRAINT stock_reserved_within_on_hand CHECK (reserved <= on_hand)
);

-- The one reservation of an order (its primary key makes it one). Failed and
-- voided reservations hold no lines; the others keep the lines they held.
CREATE TABLE reservations (
    order_id   uuid PRIMARY KEY,
    status     text NOT NULL CHECK (status IN ('held', 'failed', 'committed', 'released', 'returned', 'voided')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reservation_lines (
    order_id   uuid NOT NULL REFERENCES reservations (order_id) ON DELETE CASCADE,
    product_id uuid NOT NULL,
    quantity   integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, product_id)
);
CREATE INDEX reservation_lines_product ON reservation_lines (product_id);

-- +goose Down
DROP TABLE reservation_lines;
DROP TABLE reservations;
DROP TABLE stock;
