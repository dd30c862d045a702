-- +goose Up
-- The analytics read model: sums and sets keyed by the UTC day of each
-- event's occurred_at, built only from events, so that any order of
-- application gives the same result and a replay rebuilds it (see package
-- analytics). Every table is emptied by a reset.

-- Every event, counted per day and type (the funnel reads its stages here).
CREATE TABLE event_counts (
    day        DATE NOT NULL,
    event_type TEXT NOT NULL,
    events     BIGINT NOT NULL CHECK (events > 0),
    PRIMARY KEY (day, event_type)
);

-- Users whose cart changed, per day (the funnel's carts touched are the
-- distinct users over a period).
CREATE TABLE cart_touches (
    day     DATE NOT NULL,
    user_id UUID NOT NULL,
    PRIMARY KEY (day, user_id)
);

-- Confirmed orders and refunds per day and currency.
CREATE TABLE daily_sales (
    day              DATE NOT NULL,
    currency         CHAR(3) NOT NULL,
    orders_confirmed BIGINT NOT NULL DEFAULT 0,
    revenue_minor    BIGINT NOT NULL DEFAULT 0,
    refunds          BIGINT NOT NULL DEFAULT 0,
    refunded_minor   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, currency)
);

-- How orders ended per day: completed, or cancelled for a reason.
CREATE TABLE order_outcomes (
    day     DATE NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('completed', 'cancelled')),
    reason  TEXT NOT NULL DEFAULT '',
    orders  BIGINT NOT NULL,
    PRIMARY KEY (day, outcome, reason)
);

-- Confirmed units and revenue per product, day and currency.
CREATE TABLE product_sales (
    day           DATE NOT NULL,
    product_id    UUID NOT NULL,
    currency      CHAR(3) NOT NULL,
    units         BIGINT NOT NULL,
    revenue_minor BIGINT NOT NULL,
    PRIMARY KEY (day, product_id, currency)
);

-- What products are called: the latest sku and name by version
-- ("<occurred_at, fixed width>/<event id>", which sorts by time).
CREATE TABLE products (
    product_id   UUID PRIMARY KEY,
    sku          TEXT,
    sku_version  TEXT,
    name         TEXT,
    name_version TEXT
);

-- Stock movements per product and day.
CREATE TABLE stock_movements (
    day                  DATE NOT NULL,
    product_id           UUID NOT NULL,
    reserved             BIGINT NOT NULL DEFAULT 0,
    released             BIGINT NOT NULL DEFAULT 0,
    committed            BIGINT NOT NULL DEFAULT 0,
    returned             BIGINT NOT NULL DEFAULT 0,
    adjusted             BIGINT NOT NULL DEFAULT 0,
    reservation_failures BIGINT NOT NULL DEFAULT 0,
    low_stock_alerts     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, product_id)
);

-- +goose Down
DROP TABLE stock_movements;
DROP TABLE products;
DROP TABLE product_sales;
DROP TABLE order_outcomes;
DROP TABLE daily_sales;
DROP TABLE cart_touches;
DROP TABLE event_counts;
