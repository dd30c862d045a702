package servicekit

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
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

// A typed handler gets the decoded contract struct; a payload that does not
// decode is permanent and never reaches it.
func TestTypedHandsTheHandlerTheDecodedEvent(t *testing.T) {
	var got []contracts.UserRegisteredV1
	h := Typed(contracts.TypeUserRegisteredV1, func(_ context.Context, _ pgx.Tx, _ outbox.Message, e contracts.UserRegisteredV1) error {
		got = append(got, e)
		return nil
	})
	if err := h(context.Background(), nil, outbox.Message{}, []byte(`{"user_id":"u-1","email":"a@example.com"}`)); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].UserID != "u-1" || got[0].Email != "a@example.com" {
		t.Fatalf("handler got %+v", got)
	}
	err := h(context.Background(), nil, outbox.Message{}, []byte(`{"user_id":`))
	if !outbox.IsPermanent(err) {
		t.Errorf("a payload that does not decode: %v, want a permanent error", err)
	}
	if len(got) != 1 {
		t.Errorf("the handler ran on a payload that did not decode: %+v", got)
	}
}
