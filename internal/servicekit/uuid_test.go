package servicekit_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

type orderID string // a named string type, as the services' IDs are

// A service's connections encode UUIDs given as strings in pgx's binary
// format, arrays included, which pgx's own type map cannot (it fails, then
// falls back to text), and PostgreSQL reads back the values sent. A string
// that is no UUID is still the server's to refuse.
func TestNodeConnectionsSendUUIDStringsInBinary(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	node, err := servicekit.Open(ctx, servicekit.Config{Name: "uuids", DatabaseURL: testenv.NewDatabase(t), AMQPURL: testenv.NewVHost(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Close)
	conn, err := node.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()

	ids := []string{"0b3c8f4e-62a1-4f0e-9d7a-7c1e2b3a4d5f", "F1E2D3C4-B5A6-4978-8695-A4B3C2D1E0F9"}
	want := []string{ids[0], "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9"}
	if _, err := pgtype.NewMap().Encode(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, ids, nil); err == nil {
		t.Log("pgx's own type map now encodes strings as binary uuids: the registration may go")
	}
	for _, v := range []any{ids, []orderID{orderID(ids[0]), orderID(ids[1])}} {
		if _, err := conn.Conn().TypeMap().Encode(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, v, nil); err != nil {
			t.Errorf("encode %T for uuid[] in binary: %v", v, err)
		}
		var got []string
		if err := conn.QueryRow(ctx, `SELECT array_agg(u::text ORDER BY n) FROM unnest($1::uuid[]) WITH ORDINALITY AS a(u, n)`, v).Scan(&got); err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%T: the server read %v, want %v", v, got, want)
		}
	}
	var one string
	if err := conn.QueryRow(ctx, `SELECT $1::uuid::text`, orderID(ids[1])).Scan(&one); err != nil || one != want[1] {
		t.Errorf("scalar named string: %q, %v; want %q", one, err, want[1])
	}

	_, err = conn.Exec(ctx, `SELECT $1::uuid[]`, []string{ids[0], "not-a-uuid"})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "22P02" {
		t.Errorf("a string that is no UUID: %v, want the server's invalid_text_representation (22P02)", err)
	}
}
