-- +goose Up
-- The last number handed out per series and year. Taking a number updates
-- the row inside the issuing transaction: the row lock serialises issuers
-- and a rollback returns the number, so numbers run without gaps.
CREATE TABLE number_sequences (
    series     TEXT NOT NULL,
    year       INT NOT NULL,
    last_value BIGINT NOT NULL,
    PRIMARY KEY (series, year)
);

-- One invoice per order. Prices include VAT at vat_rate_bp basis points.
CREATE TABLE invoices (
    id              UUID PRIMARY KEY,
    number          TEXT NOT NULL UNIQUE,
    number_year     INT NOT NULL,
    number_seq      BIGINT NOT NULL,
    order_id        UUID NOT NULL UNIQUE,
    user_id         UUID NOT NULL,
    payment_id      TEXT NOT NULL,
    currency        CHAR(3) NOT NULL,
    net_minor       BIGINT NOT NULL,
    vat_minor       BIGINT NOT NULL,
    total_minor     BIGINT NOT NULL CHECK (total_minor = net_minor + vat_minor),
    vat_rate_bp     INT NOT NULL,
    billing_address JSONB NOT NULL,
    lines           JSONB NOT NULL,
    issued_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (number_year, number_seq)
);
CREATE INDEX invoices_user_id ON invoices (user_id);

-- Refunds reported by payment, credited or waiting for the order's invoice.
CREATE TABLE refunds (
    refund_id    UUID PRIMARY KEY,
    order_id     UUID NOT NULL,
    user_id      UUID NOT NULL,
    payment_id   UUID NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor >= 0),
    currency     CHAR(3) NOT NULL,
    reason       TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX refunds_order_id ON refunds (order_id);

-- One credit note per refund.
CREATE TABLE credit_notes (
    id           UUID PRIMARY KEY,
    number       TEXT NOT NULL UNIQUE,
    number_year  INT NOT NULL,
    number_seq   BIGINT NOT NULL,
    invoice_id   UUID NOT NULL REFERENCES invoices (id),
    order_id     UUID NOT NULL,
    refund_id    UUID NOT NULL UNIQUE REFERENCES refunds (refund_id),
    amount_minor BIGINT NOT NULL CHECK (amount_minor >= 0),
    currency     CHAR(3) NOT NULL,
    reason       TEXT NOT NULL,
    issued_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (number_year, number_seq)
);
CREATE INDEX credit_notes_order_id ON credit_notes (order_id);

-- +goose Down
DROP TABLE credit_notes;
DROP TABLE refunds;
DROP TABLE invoices;
DROP TABLE number_sequences;
