package httpkit_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shopmesh/shopmesh/internal/httpkit"
)

type item struct {
	Quantity int `json:"quantity"`
	Address  struct {
		City string `json:"city"`
	} `json:"address"`
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantField  string
	}{
		{"valid", `{"quantity": 2, "address": {"city": "Oslo"}}`, 0, ""},
		{"malformed", `{"quantity": 2`, 400, ""},
		{"empty", ``, 400, ""},
		{"unknown field", `{"quantity": 2, "colour": "red"}`, 422, "colour"},
		{"wrong type", `{"quantity": "two"}`, 422, "quantity"},
		{"nested wrong type", `{"address": {"city": 7}}`, 422, "address.city"},
		{"duplicate key", `{"quantity": 1, "quantity": 900}`, 400, ""},
		{"case variant key", `{"quantity": 1, "Quantity": 900}`, 400, ""},
		{"nested duplicate", `{"address": {"city": "a", "city": "b"}}`, 400, ""},
		{"two values", `{"quantity": 1} {"quantity": 2}`, 400, ""},
		{"too large", `{"quantity": 1, "address": {"city": "` + strings.Repeat("x", 200) + `"}}`, 413, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body))
			r.Header.Set("Content-Type", "application/json")
			var v item
			err := httpkit.DecodeJSON(r, 128, &v)
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("DecodeJSON() = %v, want nil", err)
				}
				return
			}
			p := httpkit.AsProblem(err)
			if p.Status != tt.wantStatus {
				t.Fatalf("status = %d (%v), want %d", p.Status, err, tt.wantStatus)
			}
			if tt.wantField != "" && (len(p.Errors) != 1 || p.Errors[0].Field != tt.wantField) {
				t.Errorf("field errors = %+v, want one for %q", p.Errors, tt.wantField)
			}
		})
	}
}

func TestDecodeJSONRejectsOtherContentTypes(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`))
	r.Header.Set("Content-Type", "text/plain")
	var v item
	if p := httpkit.AsProblem(httpkit.DecodeJSON(r, 0, &v)); p.Status != http.StatusUnsupportedMediaType {
		t.Errorf("status = %d, want 415", p.Status)
	}
}

func TestWriteProblem(t *testing.T) {
	w := httptest.NewRecorder()
	httpkit.WriteProblem(w, httptest.NewRequest(http.MethodGet, "/api/v1/orders/x", nil),
		httpkit.Validation(httpkit.FieldError{Field: "quantity", Message: "must be positive"}))
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("content type = %q", ct)
	}
	if w.Code != 422 || !strings.Contains(w.Body.String(), `"field":"quantity"`) || !strings.Contains(w.Body.String(), `"instance":"/api/v1/orders/x"`) {
		t.Errorf("got %d %s", w.Code, w.Body.String())
	}
}

func TestCallerOrder(t *testing.T) {
	const id = "0190a6c4-0000-7000-9000-000000000001"
	tests := []struct {
		name, user, path string
		wantStatus       int
	}{
		{"valid", "u1", id, 0},
		{"upper case id is made canonical", "u1", strings.ToUpper(id), 0},
		{"no user", "", id, http.StatusUnauthorized},
		{"not a uuid", "u1", "order-1", http.StatusBadRequest},
		{"uuid without dashes", "u1", strings.ReplaceAll(id, "-", ""), http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/api/v1/orders/x/payment", nil)
			r.SetPathValue("id", tt.path)
			if tt.user != "" {
				r.Header.Set(httpkit.HeaderUserID, tt.user)
			}
			user, order, err := httpkit.CallerOrder(r)
			if tt.wantStatus != 0 {
				if p := httpkit.AsProblem(err); p.Status != tt.wantStatus {
					t.Errorf("status = %d (%v), want %d", p.Status, err, tt.wantStatus)
				}
				return
			}
			if err != nil || user != tt.user || order != id {
				t.Errorf("CallerOrder() = %q, %q, %v; want %q, %q, nil", user, order, err, tt.user, id)
			}
		})
	}
}

func TestAllowMethod(t *testing.T) {
	h := httpkit.AllowMethod(http.MethodGet, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	for method, want := range map[string]int{http.MethodGet: http.StatusNoContent, http.MethodPost: http.StatusMethodNotAllowed} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, "/", nil))
		if w.Code != want {
			t.Errorf("%s: status = %d, want %d", method, w.Code, want)
		}
		if want == http.StatusMethodNotAllowed && w.Header().Get("Allow") != http.MethodGet {
			t.Errorf("%s: Allow = %q, want GET", method, w.Header().Get("Allow"))
		}
	}
}
