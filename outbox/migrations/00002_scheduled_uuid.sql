-- +goose Up
-- Unschedule deletes scheduled events by id.
CREATE INDEX IF NOT EXISTS outbox_scheduled_uuid ON outbox_scheduled (uuid);

-- +goose Down
DROP INDEX IF EXISTS outbox_scheduled_uuid;
