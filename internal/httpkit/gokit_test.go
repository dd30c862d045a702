package httpkit_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shopmesh/shopmesh/internal/httpkit"
)

var errMissing = errors.New("missing")

type thing struct {
	Order string `json:"order"`
	Err   error  `json:"-"`
}

func (t thing) Failed() error { return t.Err }

// OrderResourceHandler serves GET /api/v1/orders/{id}/<resource> to the
// caller with the endpoint, maps its business errors with toProblem, and
// answers other paths 404 and other methods 405.
func TestOrderResourceHandler(t *testing.T) {
	const id = "0190a6c4-0000-7000-9000-000000000001"
	h := httpkit.OrderResourceHandler("thing", func(_ context.Context, request any) (any, error) {
		req := request.(httpkit.OrderRequest)
		if req.UserID != "u1" {
			return thing{Err: errMissing}, nil
		}
		return thing{Order: req.OrderID}, nil
	}, func(err error) *httpkit.Problem {
		if errors.Is(err, errMissing) {
			return httpkit.NewProblem(http.StatusNotFound, "not-found", "no thing")
		}
		return nil
	}, slog.New(slog.DiscardHandler))
	tests := []struct {
		name, method, path, user string
		wantStatus               int
		wantBody                 string
	}{
		{"own", http.MethodGet, "/api/v1/orders/" + id + "/thing", "u1", http.StatusOK, `"order":"` + id + `"`},
		{"business error", http.MethodGet, "/api/v1/orders/" + id + "/thing", "u2", http.StatusNotFound, "no thing"},
		{"no user", http.MethodGet, "/api/v1/orders/" + id + "/thing", "", http.StatusUnauthorized, "unauthenticated"},
		{"bad id", http.MethodGet, "/api/v1/orders/x/thing", "u1", http.StatusBadRequest, "invalid-id"},
		{"other method", http.MethodPost, "/api/v1/orders/" + id + "/thing", "u1", http.StatusMethodNotAllowed, ""},
		{"other path", http.MethodGet, "/api/v1/orders/" + id + "/other", "u1", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, nil)
			if tt.user != "" {
				r.Header.Set(httpkit.HeaderUserID, tt.user)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %s)", w.Code, tt.wantStatus, w.Body)
			}
			if !strings.Contains(w.Body.String(), tt.wantBody) {
				t.Errorf("body = %s, want it to contain %s", w.Body, tt.wantBody)
			}
		})
	}
}

func TestRequireAdmin(t *testing.T) {
	h := httpkit.RequireAdmin(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	tests := []struct {
		name, user, role string
		want             int
	}{
		{"anonymous", "", "", http.StatusUnauthorized},
		{"customer", "u1", "customer", http.StatusForbidden},
		{"administrator", "u1", "admin", http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set(httpkit.HeaderUserID, tt.user)
			r.Header.Set(httpkit.HeaderUserRole, tt.role)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Errorf("status = %d, want %d", w.Code, tt.want)
			}
		})
	}
}
