package contracts_test

import (
	"errors"
	"testing"

	"github.com/shopmesh/shopmesh/contracts"
)

func TestDecodeLatestUpcastsAndDecodes(t *testing.T) {
	v1, err := contracts.Lookup(contracts.TypeOrderPlacedV1)
	if err != nil {
		t.Fatal(err)
	}
	typ, v, err := contracts.DecodeLatest(contracts.TypeOrderPlacedV1, v1.Example)
	if err != nil {
		t.Fatal(err)
	}
	placed, ok := v.(*contracts.OrderPlacedV2)
	if typ != contracts.TypeOrderPlacedV2 || !ok || placed.OrderID == "" || len(placed.Lines) == 0 {
		t.Errorf("DecodeLatest = %s, %#v; want the v2 event of the v1 example", typ, v)
	}
	if _, _, err := contracts.DecodeLatest(contracts.TypeOrderPlacedV2, []byte(`{"order_id": 7}`)); err == nil {
		t.Error("an invalid payload decoded")
	}
	if _, _, err := contracts.DecodeLatest("order.placed.v9", v1.Example); !errors.Is(err, contracts.ErrUnknownType) {
		t.Errorf("unknown version: err = %v, want ErrUnknownType", err)
	}
}
