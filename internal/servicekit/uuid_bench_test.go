package servicekit

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// BenchmarkUUIDArrayArgument builds the parameters of a statement taking
// one uuid[] of 1 and of 16 strings, as pgx does before sending it, with
// pgx's own type map (binary fails, then text) and with the services'
// (binary), side by side:
//
//	go test ./internal/servicekit -run '^$' -bench UUIDArrayArgument
func BenchmarkUUIDArrayArgument(b *testing.B) {
	sd := &pgconn.StatementDescription{ParamOIDs: []uint32{pgtype.UUIDArrayOID}}
	services := pgtype.NewMap()
	registerUUIDStrings(services)
	for _, n := range []int{1, 16} {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("0b3c8f4e-62a1-4f0e-9d7a-7c1e2b3a4d%02x", i)
		}
		for _, c := range []struct {
			name string
			m    *pgtype.Map
		}{{"pgx", pgtype.NewMap()}, {"services", services}} {
			b.Run(fmt.Sprintf("%d/%s", n, c.name), func(b *testing.B) {
				var eqb pgx.ExtendedQueryBuilder
				for b.Loop() {
					if err := eqb.Build(c.m, sd, []any{ids}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
