package transport

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	kithttp "github.com/go-kit/kit/transport/http"

	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/services/user/internal/app"
	"github.com/shopmesh/shopmesh/services/user/internal/domain"
)

// NewHandler serves the user service's public routes (the gateway forwards
// them unchanged). maxBody bounds every JSON body.
func NewHandler(e Endpoints, maxBody int64, logger *slog.Logger) http.Handler {
	opts := httpkit.ServerOptions(toProblem, logger)
	ok := httpkit.EncodeJSON(http.StatusOK, toProblem, logger)
	created := httpkit.EncodeJSON(http.StatusCreated, toProblem, logger)

	mux := http.NewServeMux()
	mux.Handle("POST /api/v1/auth/register", kithttp.NewServer(e.Register, decodeRegister(maxBody), created, opts...))
	mux.Handle("POST /api/v1/auth/login", kithttp.NewServer(e.Login, decodeLogin(maxBody), ok, opts...))
	mux.Handle("PUT /api/v1/me/address", kithttp.NewServer(e.SetAddress, decodeSetAddress(maxBody), ok, opts...))
	mux.Handle("GET /api/v1/me/address", kithttp.NewServer(e.GetAddress, decodeGetAddress, ok, opts...))
	mux.Handle("POST /api/v1/admin/users/{id}/deactivate", kithttp.NewServer(e.Deactivate, decodeDeactivate(maxBody), ok, opts...))
	return logRequests(mux, logger)
}

func decodeRegister(maxBody int64) kithttp.DecodeRequestFunc {
	return func(_ context.Context, r *http.Request) (any, error) {
		var req registerRequest
		if err := httpkit.DecodeJSON(r, maxBody, &req); err != nil {
			return nil, err
		}
		return req, nil
	}
}

func decodeLogin(maxBody int64) kithttp.DecodeRequestFunc {
	return func(_ context.Context, r *http.Request) (any, error) {
		var req loginRequest
		if err := httpkit.DecodeJSON(r, maxBody, &req); err != nil {
			return nil, err
		}
		return req, nil
	}
}

// caller returns the identity the gateway set. The caller is checked before
// the body is read, so an anonymous or unprivileged request learns nothing
// about what a valid body would be; the app checks again.
func caller(ctx context.Context, needAdmin bool) (app.Caller, error) {
	id := httpkit.IdentityFrom(ctx)
	c := app.Caller{UserID: id.UserID, Role: id.Role}
	if c.UserID == "" {
		return c, app.ErrUnauthenticated
	}
	if needAdmin && c.Role != string(domain.RoleAdmin) {
		return c, app.ErrForbidden
	}
	return c, nil
}

func decodeSetAddress(maxBody int64) kithttp.DecodeRequestFunc {
	return func(ctx context.Context, r *http.Request) (any, error) {
		c, err := caller(ctx, false)
		if err != nil {
			return nil, err
		}
		req := setAddressRequest{caller: c}
		if err := httpkit.DecodeJSON(r, maxBody, &req.address); err != nil {
			return nil, err
		}
		return req, nil
	}
}

func decodeGetAddress(ctx context.Context, _ *http.Request) (any, error) {
	c, err := caller(ctx, false)
	if err != nil {
		return nil, err
	}
	return getAddressRequest{caller: c}, nil
}

func decodeDeactivate(maxBody int64) kithttp.DecodeRequestFunc {
	return func(ctx context.Context, r *http.Request) (any, error) {
		c, err := caller(ctx, true)
		if err != nil {
			return nil, err
		}
		req := deactivateRequest{caller: c, userID: r.PathValue("id")}
		// The body is optional: no body deactivates without a reason. Peek
		// rather than trust Content-Length, which is -1 when chunked.
		br := bufio.NewReader(r.Body)
		_, err = br.Peek(1)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, httpkit.NewProblem(http.StatusBadRequest, "unreadable-body", "the body could not be read")
		}
		if err == nil {
			r.Body = io.NopCloser(br)
			var body struct {
				Reason string `json:"reason"`
			}
			if err := httpkit.DecodeJSON(r, maxBody, &body); err != nil {
				return nil, err
			}
			req.Reason = body.Reason
		}
		return req, nil
	}
}

// toProblem is the service's one mapping from errors to HTTP problems.
func toProblem(err error) *httpkit.Problem {
	var v *domain.ValidationError
	switch {
	case errors.As(err, &v):
		fields := make([]httpkit.FieldError, 0, len(v.Fields))
		for _, f := range v.Fields {
			fields = append(fields, httpkit.FieldError{Field: f.Field, Message: f.Message})
		}
		return httpkit.Validation(fields...)
	case errors.Is(err, app.ErrUnauthenticated):
		return httpkit.NewProblem(http.StatusUnauthorized, "unauthenticated", "this route needs a signed-in user")
	case errors.Is(err, app.ErrForbidden):
		return httpkit.NewProblem(http.StatusForbidden, "forbidden", "this route needs the admin role")
	case errors.Is(err, app.ErrSelfDeactivate):
		return httpkit.NewProblem(http.StatusConflict, "self-deactivation", "administrators cannot deactivate their own account")
	case errors.Is(err, domain.ErrInvalidCredentials):
		return httpkit.NewProblem(http.StatusUnauthorized, "invalid-credentials", "the email or password is not correct")
	case errors.Is(err, domain.ErrDeactivated):
		// 401, not 403: the credentials (or the token's account) are no
		// longer good for anything, and the public API documents 401.
		return httpkit.NewProblem(http.StatusUnauthorized, "account-deactivated", "the account is deactivated")
	case errors.Is(err, domain.ErrEmailTaken):
		return httpkit.NewProblem(http.StatusConflict, "email-taken", "an account with this email already exists")
	case errors.Is(err, domain.ErrNoAddress):
		return httpkit.NewProblem(http.StatusNotFound, "no-address", "no default address is set")
	case errors.Is(err, domain.ErrNotFound):
		return httpkit.NewProblem(http.StatusNotFound, "not-found", "no such user")
	}
	return nil
}

// logRequests logs every request at debug level and failures at warn.
func logRequests(next http.Handler, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		level := slog.LevelDebug
		if sw.status >= 500 {
			level = slog.LevelWarn
		}
		logger.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path,
			"status", sw.status, "duration", time.Since(start), "request_id", r.Header.Get(httpkit.HeaderRequestID))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}
