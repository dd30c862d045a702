-- +goose Up
-- The catalogue. The CHECK constraints restate the domain's rules for what
-- no code path may store: a positive price in an ISO 4217-shaped currency and
-- non-negative availability.
CREATE TABLE products (
    id              uuid PRIMARY KEY,
    sku             text NOT NULL CONSTRAINT products_sku_key UNIQUE CHECK (sku ~ '^[A-Z0-9]+([-_][A-Z0-9]+)*$'),
    name            text NOT NULL CHECK (name <> ''),
    description     text NOT NULL DEFAULT '',
    price_minor     bigint NOT NULL CHECK (price_minor > 0),
    currency        text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- Available units as inventory last reported them (initial stock until
    -- the first report), and when that report happened.
    stock_available integer NOT NULL DEFAULT 0 CHECK (stock_available >= 0),
    stock_as_of     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX products_by_name ON products (name, id);

-- +goose Down
DROP TABLE products;
