-- +goose Up
-- order_written fails the statement that calls it unless exactly one row
-- was changed. A change of an order is written with its transaction's
-- COMMIT, in the same round trip, where a check on the client would come
-- too late to stop it; so the update checks on the server that the
-- revision it read is still the stored one.
-- +goose StatementBegin
CREATE FUNCTION order_written(changed BIGINT, id UUID, revision INT) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    IF changed <> 1 THEN
        RAISE EXCEPTION 'order %: revision % changed underneath', id, revision;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION order_written(BIGINT, UUID, INT);
