-- +goose Up
-- Accounts. email is the normalised login (trimmed, lower-case), unique.
CREATE TABLE users (
    id                  uuid PRIMARY KEY,
    email               text NOT NULL CHECK (email = lower(email)),
    name                text NOT NULL,
    password_hash       text NOT NULL,
    role                text NOT NULL CHECK (role IN ('customer', 'admin')),
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    deactivated_at      timestamptz,
    deactivation_reason text NOT NULL DEFAULT '',
    CONSTRAINT users_email_key UNIQUE (email)
);

-- Each account's default shipping address (at most one).
CREATE TABLE user_addresses (
    user_id     uuid PRIMARY KEY REFERENCES users (id),
    name        text NOT NULL,
    line1       text NOT NULL,
    line2       text NOT NULL DEFAULT '',
    city        text NOT NULL,
    postal_code text NOT NULL,
    country     text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    updated_at  timestamptz NOT NULL
);

-- +goose Down
DROP TABLE user_addresses;
DROP TABLE users;
