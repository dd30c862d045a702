-- +goose Up
CREATE TABLE widgets (id TEXT PRIMARY KEY);
-- +goose Down
DROP TABLE widgets;
