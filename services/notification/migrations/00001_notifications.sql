-- +goose Up
-- What the service knows about customers, from user events (a read model:
-- the user service owns accounts). email and name are null until
-- user.registered.v1 arrives, which may be after a deactivation on replay.
CREATE TABLE contacts (
    user_id        uuid PRIMARY KEY,
    email          text,
    name           text,
    registered_at  timestamptz,
    deactivated_at timestamptz,
    updated_at     timestamptz NOT NULL
);

-- Every notification, sent or not. One per (event, recipient, channel):
-- recipient is the customer's user id, or the staff address.
CREATE TABLE notifications (
    id              uuid PRIMARY KEY,
    event_id        text NOT NULL,
    event_type      text NOT NULL,
    audience        text NOT NULL CHECK (audience IN ('customer', 'staff')),
    user_id         uuid,
    recipient       text NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('email', 'sms')),
    template        text NOT NULL,
    subject         text NOT NULL,
    body            text NOT NULL,
    order_id        uuid,
    created_at      timestamptz NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text NOT NULL DEFAULT '',
    to_address      text NOT NULL DEFAULT '',
    sent_at         timestamptz,
    CONSTRAINT notifications_once UNIQUE (event_id, recipient, channel),
    CONSTRAINT notifications_customer_has_user CHECK ((audience = 'customer') = (user_id IS NOT NULL)),
    CONSTRAINT notifications_sent_has_time CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);

-- A customer's notifications, newest first (the API's keyset paging).
CREATE INDEX notifications_by_user ON notifications (user_id, created_at DESC, id DESC) WHERE user_id IS NOT NULL;
-- The dispatcher's queue.
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';

-- +goose Down
DROP TABLE notifications;
DROP TABLE contacts;
