package apiclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestExpect(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Authorization"); got != "Bearer tok" {
			t.Errorf("Authorization = %q, want Bearer tok", got)
		}
		if got := r.Header.Get("Idempotency-Key"); got != "k1" {
			t.Errorf("Idempotency-Key = %q, want k1", got)
		}
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte(`{"order_id":"o1"}`))
		default:
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"title":"Conflict","status":409,"detail":"cart is empty"}`))
		}
	}))
	defer srv.Close()
	c := New(srv.URL, srv.Client()).As("tok")
	ctx := context.Background()

	var out struct {
		OrderID string `json:"order_id"`
	}
	if err := c.Expect(ctx, http.StatusAccepted, &out, http.MethodPost, "/ok", map[string]int{"a": 1}, "Idempotency-Key", "k1"); err != nil {
		t.Fatalf("Expect: %v", err)
	}
	if out.OrderID != "o1" {
		t.Errorf("order_id = %q, want o1", out.OrderID)
	}

	err := c.Expect(ctx, http.StatusAccepted, nil, http.MethodPost, "/conflict", nil, "Idempotency-Key", "k1")
	if !HasStatus(err, http.StatusConflict) {
		t.Fatalf("err = %v, want a 409 StatusError", err)
	}
	if got, want := err.Error(), "POST /conflict = 409 cart is empty, want 202"; got != want {
		t.Errorf("err = %q, want %q", got, want)
	}
}

func TestCartItemSet(t *testing.T) {
	for _, tt := range []struct {
		status  int
		done    bool
		wantErr bool
	}{
		{http.StatusOK, true, false},
		{http.StatusNotFound, false, false},
		{http.StatusConflict, false, false},
		{http.StatusUnprocessableEntity, false, false},
		{http.StatusBadRequest, false, true},
	} {
		done, err := CartItemSet(Response{Status: tt.status})
		if done != tt.done || (err != nil) != tt.wantErr {
			t.Errorf("CartItemSet(%d) = %v, %v; want %v, error %v", tt.status, done, err, tt.done, tt.wantErr)
		}
	}
}
