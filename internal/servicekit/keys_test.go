package servicekit

import (
	"reflect"
	"testing"
)

func TestKeysInNamesOneKeyWithoutAnArray(t *testing.T) {
	for _, tc := range []struct {
		name, column, typ string
		n                 int
		keys              []string
		cond              string
		arg               any
	}{
		{name: "one key", column: "id", typ: "uuid", n: 1, keys: []string{"a"}, cond: "id = $1::uuid", arg: "a"},
		{name: "several", column: "o.order_id", typ: "uuid", n: 2, keys: []string{"a", "b"}, cond: "o.order_id = ANY($2::uuid[])", arg: []string{"a", "b"}},
		{name: "none", column: "id", typ: "uuid", n: 1, keys: nil, cond: "id = ANY($1::uuid[])", arg: []string(nil)},
		{name: "no cast", column: "product_id", n: 1, keys: []string{"p"}, cond: "product_id = $1", arg: "p"},
		{name: "no cast, several", column: "product_id", n: 1, keys: []string{"p", "q"}, cond: "product_id = ANY($1)", arg: []string{"p", "q"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cond, arg := KeysIn(tc.column, tc.typ, tc.n, tc.keys)
			if cond != tc.cond || !reflect.DeepEqual(arg, tc.arg) {
				t.Errorf("KeysIn = %q, %#v; want %q, %#v", cond, arg, tc.cond, tc.arg)
			}
		})
	}
}
