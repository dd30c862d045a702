-- +goose Up
-- The correlation id of the event a notification answers, so that
-- notification.sent.v1, published later by the dispatcher, continues that
-- event's correlation and names it as its cause.
ALTER TABLE notifications ADD COLUMN correlation_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE notifications DROP COLUMN correlation_id;
