package servicekit

import (
	"testing"

	"github.com/shopmesh/shopmesh/contracts"
)

// A decoder decodes into the struct registered for its type, and refuses
// to be made for another type's struct.
func TestDecodeAsChecksTheContractStruct(t *testing.T) {
	decode := DecodeAs[contracts.UserRegisteredV1](contracts.TypeUserRegisteredV1)
	ev, err := decode([]byte(`{"user_id":"u-1","email":"a@example.com"}`))
	if err != nil || ev.UserID != "u-1" || ev.Email != "a@example.com" {
		t.Fatalf("decode = %+v, %v", ev, err)
	}
	if _, err := decode([]byte(`{"user_id":`)); err == nil {
		t.Error("a truncated payload decoded")
	}
	defer func() {
		if recover() == nil {
			t.Error("DecodeAs paired a struct with another type's name")
		}
	}()
	DecodeAs[contracts.UserRegisteredV1](contracts.TypeUserDeactivatedV1)
}
