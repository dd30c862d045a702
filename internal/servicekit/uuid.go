package servicekit

import (
	"github.com/jackc/pgx/v5/pgtype"
)

// The services pass UUIDs to PostgreSQL as Go strings. pgx sends a string
// argument in the text format, which serves a uuid parameter, but an array
// argument in the binary format, where its uuid codec takes no strings: each
// []string for a uuid[] parameter (`= ANY($1)`, `unnest($1::uuid[])`) first
// failed, looking its encode plan up again and formatting an error every
// time, before pgx fell back to the text format. registerUUIDStrings makes
// the binary format take strings too.
func registerUUIDStrings(m *pgtype.Map) {
	uuid := &pgtype.Type{Name: "uuid", OID: pgtype.UUIDOID, Codec: uuidCodec{}}
	m.RegisterType(uuid)
	m.RegisterType(&pgtype.Type{Name: "_uuid", OID: pgtype.UUIDArrayOID, Codec: &pgtype.ArrayCodec{ElementType: uuid}})
}

// uuidCodec is pgx's uuid codec that also encodes a string in the binary
// format (a named string type reaches it as a string: pgx unwraps it).
type uuidCodec struct{ pgtype.UUIDCodec }

func (c uuidCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(string); ok && format == pgtype.BinaryFormatCode {
		return encodeUUIDString{}
	}
	return c.UUIDCodec.PlanEncode(m, oid, format, value)
}

type encodeUUIDString struct{}

// Encode parses the string as PostgreSQL would; one it cannot parse is an
// error, and pgx then sends it as text for the server to refuse.
func (encodeUUIDString) Encode(value any, buf []byte) ([]byte, error) {
	var u pgtype.UUID
	if err := u.Scan(value.(string)); err != nil {
		return nil, err
	}
	return append(buf, u.Bytes[:]...), nil
}
