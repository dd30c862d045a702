// Package httpkit holds the HTTP conventions shared by the gateway and every
// service: RFC 9457 problem details, strict JSON request decoding, the
// identity headers the gateway sets after authenticating a caller, and
// request correlation. It must not know any service's routes or domain.
package httpkit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode"

	"github.com/shopmesh/shopmesh/internal/ids"
)

// Identity headers. The gateway removes any a client sends and sets them from
// the verified token; services trust them because only the gateway reaches them.
const (
	HeaderUserID    = "X-Shopmesh-User-Id"
	HeaderUserRole  = "X-Shopmesh-User-Role"
	HeaderRequestID = "X-Request-Id"
)

// FieldError names one invalid field of a request.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Problem is an RFC 9457 problem detail; it is also an error so that layers
// can return it and the transport write it.
type Problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Errors   []FieldError `json:"errors,omitempty"`
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Title + ": " + p.Detail
	}
	return p.Title
}

// NewProblem returns a problem whose type is derived from code
// (https://shopmesh.dev/problems/<code>).
func NewProblem(status int, code, detail string, fields ...FieldError) *Problem {
	return &Problem{
		Type:   "https://shopmesh.dev/problems/" + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Errors: fields,
	}
}

// Validation returns a 422 problem listing the invalid fields.
func Validation(fields ...FieldError) *Problem {
	return NewProblem(http.StatusUnprocessableEntity, "validation", "the request has invalid fields", fields...)
}

// WriteProblem writes p as application/problem+json.
func WriteProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// WriteJSON writes v with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// AsProblem returns err as a problem: a *Problem anywhere in its chain, or an
// opaque 500 (internal details never reach the client).
func AsProblem(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	return NewProblem(http.StatusInternalServerError, "internal", "the request could not be completed")
}

// MaxBody is the default limit of a JSON request body.
const MaxBody = 64 << 10

// DecodeJSON decodes the request body into v strictly: it must be one JSON
// value of at most maxBytes, with no unknown fields, no duplicate keys and
// no keys differing from a known one only in case (Go's decoder would
// silently accept all of these). Failures are *Problem errors: 413 for
// size, 415 for a wrong content type, 400 for malformed JSON and 422 for
// fields of the wrong type.
func DecodeJSON(r *http.Request, maxBytes int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return NewProblem(http.StatusUnsupportedMediaType, "unsupported-media-type", "the body must be application/json")
	}
	if maxBytes <= 0 {
		maxBytes = MaxBody
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBytes+1))
	if err != nil {
		return NewProblem(http.StatusBadRequest, "unreadable-body", "the body could not be read")
	}
	if int64(len(body)) > maxBytes {
		return NewProblem(http.StatusRequestEntityTooLarge, "body-too-large", fmt.Sprintf("the body exceeds %d bytes", maxBytes))
	}
	return DecodeStrict(body, v)
}

// DecodeStrict applies DecodeJSON's rules to a byte slice.
func DecodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return NewProblem(http.StatusBadRequest, "malformed-json", "the body is empty")
	}
	if err := checkKeys(body); err != nil {
		return NewProblem(http.StatusBadRequest, "malformed-json", err.Error())
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr):
			field := typeErr.Field
			if field == "" {
				field = "(body)"
			}
			return Validation(FieldError{Field: field, Message: "must be of type " + jsonKind(typeErr.Type.Kind().String())})
		case errors.As(err, &syntaxErr):
			return NewProblem(http.StatusBadRequest, "malformed-json", fmt.Sprintf("invalid JSON at byte %d", syntaxErr.Offset))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return Validation(FieldError{Field: name, Message: "unknown field"})
		default:
			return NewProblem(http.StatusBadRequest, "malformed-json", "the body is not valid JSON")
		}
	}
	if dec.More() {
		return NewProblem(http.StatusBadRequest, "malformed-json", "the body holds more than one JSON value")
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "number"
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	default:
		return "object"
	}
}

// checkKeys walks the JSON tokens and rejects an object holding the same key
// twice, or two keys equal but for case.
func checkKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		object    bool
		keys      map[string]string // folded -> as written
		expectKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("invalid JSON: %v", err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if top != nil && top.object {
					top.expectKey = true
				}
				stack = append(stack, &frame{object: t == '{', keys: map[string]string{}, expectKey: t == '{'})
			case '}', ']':
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].expectKey = true
				}
			}
		case string:
			if top != nil && top.object && top.expectKey {
				folded := strings.Map(unicode.ToLower, t)
				if prev, seen := top.keys[folded]; seen {
					if prev == t {
						return fmt.Errorf("duplicate key %q", t)
					}
					return fmt.Errorf("keys %q and %q differ only in case", prev, t)
				}
				top.keys[folded] = t
				top.expectKey = false
				continue
			}
			if top != nil && top.object {
				top.expectKey = true
			}
		default:
			if top != nil && top.object {
				top.expectKey = true
			}
		}
	}
}

// UserID is the authenticated caller's id set by the gateway ("" if none).
func UserID(r *http.Request) string { return r.Header.Get(HeaderUserID) }

// IsAdmin reports whether the gateway authenticated an administrator.
func IsAdmin(r *http.Request) bool { return r.Header.Get(HeaderUserRole) == "admin" }

type ctxKey int

const identityKey ctxKey = 0

// Identity is the caller as seen by a service.
type Identity struct {
	UserID string
	Role   string
}

// WithIdentity stores the caller's identity in ctx (go-kit request funcs use
// it to pass the identity from the transport to endpoints).
func WithIdentity(ctx context.Context, r *http.Request) context.Context {
	return context.WithValue(ctx, identityKey, Identity{UserID: r.Header.Get(HeaderUserID), Role: r.Header.Get(HeaderUserRole)})
}

// IdentityFrom returns the identity stored by WithIdentity.
func IdentityFrom(ctx context.Context) Identity {
	id, _ := ctx.Value(identityKey).(Identity)
	return id
}

// CallerOrder reads a request for what a service holds about one of the
// caller's orders (GET /api/v1/orders/{id}/<resource>): the authenticated
// user, a 401 problem without one, and the {id} path value, a 400 problem
// unless it is a UUID in its 36-character form, returned canonical.
func CallerOrder(r *http.Request) (userID, orderID string, err error) {
	userID = UserID(r)
	if userID == "" {
		return "", "", NewProblem(http.StatusUnauthorized, "unauthenticated", "this route needs an authenticated user")
	}
	id, ok := ids.Canonical(r.PathValue("id"))
	if !ok {
		return "", "", NewProblem(http.StatusBadRequest, "invalid-id", "the order id in the path must be a UUID",
			FieldError{Field: "id", Message: "must be a UUID"})
	}
	return userID, id, nil
}

// RequireAdmin serves next to administrators only: it answers 401 without
// an identity and 403 for a caller who is not an administrator, before the
// request body is read.
func RequireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case UserID(r) == "":
			WriteProblem(w, r, NewProblem(http.StatusUnauthorized, "unauthenticated", "this route needs an authenticated caller"))
		case !IsAdmin(r):
			WriteProblem(w, r, NewProblem(http.StatusForbidden, "forbidden", "this route is for administrators"))
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// AllowMethod serves h for method only and answers any other with a 405
// problem and an Allow header naming method.
func AllowMethod(method string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			WriteProblem(w, r, NewProblem(http.StatusMethodNotAllowed, "method-not-allowed", "use "+method))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// NotFound answers a 404 problem: the catch-all route of a service's mux.
func NotFound(w http.ResponseWriter, r *http.Request) {
	WriteProblem(w, r, NewProblem(http.StatusNotFound, "not-found", "no such route"))
}
