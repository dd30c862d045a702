-- +goose Up
-- The cart's view of the catalogue, kept from catalog.product_created,
-- product_updated and price_changed. Details and price change in separate
-- events, so each remembers when its last applied change happened.
CREATE TABLE products (
    id            uuid PRIMARY KEY,
    sku           text NOT NULL CHECK (sku <> ''),
    name          text NOT NULL CHECK (name <> ''),
    price_minor   bigint NOT NULL CHECK (price_minor >= 0),
    currency      text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    details_as_of timestamptz NOT NULL,
    price_as_of   timestamptz NOT NULL
);

-- One row per user who ever changed a cart: every change locks it, so one
-- user's changes and checkouts apply one after the other.
CREATE TABLE carts (
    user_id    uuid PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Lines of open carts, each with the price snapshot it will be ordered at
-- (kept current by price changes until checkout empties the cart).
CREATE TABLE cart_lines (
    user_id          uuid NOT NULL REFERENCES carts (user_id) ON DELETE CASCADE,
    product_id       uuid NOT NULL REFERENCES products (id),
    sku              text NOT NULL,
    name             text NOT NULL,
    quantity         integer NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    unit_price_minor bigint NOT NULL CHECK (unit_price_minor >= 0),
    currency         text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    added_at         timestamptz NOT NULL,
    PRIMARY KEY (user_id, product_id)
);
CREATE INDEX cart_lines_product ON cart_lines (product_id);

-- Checkouts by idempotency key: the same key and request get the same order
-- back; the order id is unique because it is chosen here.
CREATE TABLE checkouts (
    user_id         uuid NOT NULL,
    idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash    text NOT NULL CHECK (request_hash ~ '^[0-9a-f]{64}$'),
    order_id        uuid NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, idempotency_key)
);
CREATE INDEX checkouts_created_at ON checkouts (created_at);

-- +goose Down
DROP TABLE checkouts;
DROP TABLE cart_lines;
DROP TABLE carts;
DROP TABLE products;
