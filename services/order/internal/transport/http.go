package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/kit/endpoint"
	kithttp "github.com/go-kit/kit/transport/http"

	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/services/order/internal/app"
	"github.com/shopmesh/shopmesh/services/order/internal/domain"
)

// Service is the application as the HTTP API uses it.
type Service interface {
	Get(ctx context.Context, user domain.UserID, id domain.OrderID) (*domain.Order, error)
	Revision(ctx context.Context, user domain.UserID, id domain.OrderID) (int, error)
	List(ctx context.Context, user domain.UserID, q app.ListQuery) (app.ListResult, error)
	Cancel(ctx context.Context, user domain.UserID, id domain.OrderID) (*domain.Order, error)
}

// maxCancelBody bounds the optional body of a cancellation.
const maxCancelBody = 1 << 10

// NewHTTPHandler serves the order API at the public paths the gateway
// forwards unchanged:
//
//	GET  /api/v1/orders              the caller's orders, newest first (?limit=, ?cursor=)
//	GET  /api/v1/orders/{id}         one of the caller's orders (If-None-Match, Prefer: wait)
//	POST /api/v1/orders/{id}/cancel  cancel one of the caller's orders (202)
//
// The caller is the user the gateway authenticated (identity headers); a
// request without one is 401, another customer's order is 404. A read that
// asks to wait for a change is woken by changes (see Changes); the
// cancellations served here report theirs to it.
func NewHTTPHandler(s Service, changes *Changes, logger *slog.Logger) http.Handler {
	return newHTTPHandler(s, changes, logger, recheck)
}

func newHTTPHandler(s Service, changes *Changes, logger *slog.Logger, recheck time.Duration) http.Handler {
	opts := httpkit.ServerOptions(toProblem, logger)
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/orders", kithttp.NewServer(
		makeListOrdersEndpoint(s), decodeListOrders, httpkit.EncodeJSON(http.StatusOK, toProblem, logger), opts...))
	mux.Handle("GET /api/v1/orders/{id}", kithttp.NewServer(
		makeGetOrderEndpoint(s, changes, recheck), decodeGetOrder, encodeGetOrder(httpkit.ErrorEncoder(toProblem, logger)), opts...))
	mux.Handle("POST /api/v1/orders/{id}/cancel", kithttp.NewServer(
		makeCancelOrderEndpoint(s, changes), decodeCancelOrder, httpkit.EncodeJSON(http.StatusAccepted, toProblem, logger), opts...))
	mux.Handle("/api/v1/orders", methodNotAllowed("GET, HEAD"))
	mux.Handle("/api/v1/orders/{id}", methodNotAllowed("GET, HEAD"))
	mux.Handle("/api/v1/orders/{id}/cancel", methodNotAllowed("POST"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusNotFound, "not-found", "no such resource"))
	})
	return mux
}

func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusMethodNotAllowed, "method-not-allowed", "allowed: "+allow))
	})
}

// toProblem is the service's one mapping of errors to HTTP problems.
func toProblem(err error) *httpkit.Problem {
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return httpkit.NewProblem(http.StatusNotFound, "order-not-found", "no such order")
	case errors.Is(err, domain.ErrAlreadyShipped):
		return httpkit.NewProblem(http.StatusConflict, "order-already-dispatched", "the order has been dispatched and can no longer be cancelled")
	case errors.Is(err, domain.ErrInvalidID):
		return httpkit.NewProblem(http.StatusBadRequest, "invalid-id", "order ids are UUIDs")
	case errors.Is(err, app.ErrBadPageSize):
		return httpkit.Validation(httpkit.FieldError{Field: "limit", Message: fmt.Sprintf("must be an integer from 1 to %d", app.MaxPageSize)})
	}
	return nil
}

// Requests and responses, one per method.

type getOrderRequest struct {
	User domain.UserID
	ID   domain.OrderID
	// NoneMatch are the entity tags of If-None-Match ("*" for any).
	NoneMatch []string
	// Wait is how long to wait for a change (Prefer: wait), at most MaxWait.
	Wait time.Duration
}

type cancelOrderRequest struct {
	User domain.UserID
	ID   domain.OrderID
}

type listOrdersRequest struct {
	User  domain.UserID
	Query app.ListQuery
}

// orderResponse is the answer of get and cancel: the order itself.
type orderResponse struct {
	orderView
	err error
}

func (r orderResponse) Failed() error { return r.err }

type listOrdersResponse struct {
	Items      []orderView `json:"items"`
	NextCursor string      `json:"next_cursor,omitempty"`
	err        error
}

func (r listOrdersResponse) Failed() error { return r.err }

// getOrderResponse is the answer of a read: the order encoded with its
// entity tag, or not modified, or an error.
type getOrderResponse struct {
	body        []byte
	etag        string
	revision    int // of the order read; 0 when there was none
	notModified bool
	wait        time.Duration // the wait applied, when one was asked for
	err         error
}

func (r getOrderResponse) Failed() error { return r.err }

// unchanged reports whether the answer holds nothing new for the client:
// the order it already has, or still no order.
func (r getOrderResponse) unchanged() bool {
	return r.notModified || errors.Is(r.err, domain.ErrNotFound)
}

// MaxWait bounds `Prefer: wait`, below the gateway's default request
// timeout (15 s). recheck is how often a waiting read checks the order's
// revision without being woken.
const (
	MaxWait = 10 * time.Second
	recheck = time.Second
)

// makeGetOrderEndpoint reads the order; while the answer is unchanged and
// the request's wait has not passed, it waits for the order to change and
// reads it again. Every recheck it reads the order's revision, and the
// whole order only when that moved. A stopping service answers what it has.
func makeGetOrderEndpoint(s Service, changes *Changes, recheck time.Duration) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(getOrderRequest)
		deadline := time.Now().Add(req.Wait)
		changed, release := changes.watch(req.ID) // before the read: a change committed after it wakes the wait
		res := readOrder(ctx, s, req)
		for {
			left := time.Until(deadline)
			if !res.unchanged() || left <= 0 || ctx.Err() != nil || changes.stopped() {
				release()
				res.wait = req.Wait
				return res, nil
			}
			timer := time.NewTimer(min(left, recheck))
			woken := false
			select {
			case <-changed:
				woken = true
			case <-timer.C:
			case <-ctx.Done():
			case <-changes.stopping:
			}
			timer.Stop()
			if ctx.Err() != nil || changes.stopped() {
				continue // answer what it has, without reading again
			}
			release()
			changed, release = changes.watch(req.ID)
			if woken || moved(ctx, s, req, res.revision) {
				res = readOrder(ctx, s, req)
			}
		}
	}
}

// moved reports whether the order may have changed from revision (0: it
// was not there): its revision differs, or could not be read.
func moved(ctx context.Context, s Service, req getOrderRequest, revision int) bool {
	now, err := s.Revision(ctx, req.User, req.ID)
	if errors.Is(err, domain.ErrNotFound) {
		return revision != 0
	}
	return err != nil || now != revision
}

// readOrder reads the order once and encodes it.
func readOrder(ctx context.Context, s Service, req getOrderRequest) getOrderResponse {
	o, err := s.Get(ctx, req.User, req.ID)
	if err != nil {
		return getOrderResponse{err: err}
	}
	body, err := json.Marshal(toView(o))
	if err != nil {
		return getOrderResponse{err: fmt.Errorf("encode order %s: %w", req.ID, err)}
	}
	etag := entityTag(body)
	return getOrderResponse{body: append(body, '\n'), etag: etag, revision: o.Revision(), notModified: noneMatch(req.NoneMatch, etag)}
}

// entityTag is a strong entity tag of an encoded representation.
func entityTag(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// noneMatch reports whether If-None-Match's tags name etag, by the weak
// comparison RFC 9110 prescribes for it.
func noneMatch(tags []string, etag string) bool {
	for _, t := range tags {
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// encodeGetOrder writes a read's answer: 200 with the order and its
// ETag, 304 with only the ETag, or the problem.
func encodeGetOrder(encodeErr kithttp.ErrorEncoder) kithttp.EncodeResponseFunc {
	return func(ctx context.Context, w http.ResponseWriter, response any) error {
		res := response.(getOrderResponse)
		if res.wait > 0 {
			w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(int(res.wait/time.Second)))
		}
		if res.err != nil {
			encodeErr(ctx, res.err, w)
			return nil
		}
		w.Header().Set("ETag", res.etag)
		if res.notModified {
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, err := w.Write(res.body)
		return err
	}
}

func makeCancelOrderEndpoint(s Service, changes *Changes) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(cancelOrderRequest)
		o, err := s.Cancel(ctx, req.User, req.ID)
		if err != nil {
			return orderResponse{err: err}, nil
		}
		changes.Changed(req.ID)
		return orderResponse{orderView: toView(o)}, nil
	}
}

func makeListOrdersEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(listOrdersRequest)
		res, err := s.List(ctx, req.User, req.Query)
		if err != nil {
			return listOrdersResponse{err: err}, nil
		}
		out := listOrdersResponse{Items: make([]orderView, 0, len(res.Orders))}
		for _, o := range res.Orders {
			out.Items = append(out.Items, toView(o))
		}
		if res.Next != nil {
			out.NextCursor = encodeCursor(*res.Next)
		}
		return out, nil
	}
}

// caller is the authenticated user, or a 401 problem.
func caller(ctx context.Context) (domain.UserID, error) {
	id, err := domain.ParseUserID(httpkit.IdentityFrom(ctx).UserID)
	if err != nil {
		return "", httpkit.NewProblem(http.StatusUnauthorized, "unauthenticated", "the request carries no authenticated user")
	}
	return id, nil
}

func pathOrderID(r *http.Request) (domain.OrderID, error) {
	id, err := domain.ParseOrderID(r.PathValue("id"))
	if err != nil {
		return "", httpkit.NewProblem(http.StatusBadRequest, "invalid-id", "order ids are UUIDs")
	}
	return id, nil
}

func decodeGetOrder(ctx context.Context, r *http.Request) (any, error) {
	user, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := pathOrderID(r)
	if err != nil {
		return nil, err
	}
	return getOrderRequest{User: user, ID: id, NoneMatch: entityTags(r.Header.Values("If-None-Match")), Wait: preferredWait(r.Header.Values("Prefer"))}, nil
}

// entityTags splits If-None-Match header values into their entity tags.
func entityTags(values []string) []string {
	var tags []string
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				tags = append(tags, t)
			}
		}
	}
	return tags
}

// preferredWait is the `wait` preference of Prefer header values (RFC
// 7240: delta-seconds), capped at MaxWait; 0 when there is none. A wait
// that is not a number of seconds is ignored, as unknown preferences are.
func preferredWait(values []string) time.Duration {
	for _, v := range values {
		for pref := range strings.SplitSeq(v, ",") {
			pref, _, _ = strings.Cut(pref, ";") // parameters of a preference
			name, value, _ := strings.Cut(strings.TrimSpace(pref), "=")
			if !strings.EqualFold(strings.TrimSpace(name), "wait") {
				continue
			}
			n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(value), `"`))
			if err != nil || n < 0 {
				return 0
			}
			return min(time.Duration(n)*time.Second, MaxWait)
		}
	}
	return 0
}

// decodeCancelOrder accepts no body or an empty JSON object: a cancellation
// needs nothing but the order, and anything else is refused rather than
// silently ignored.
func decodeCancelOrder(ctx context.Context, r *http.Request) (any, error) {
	user, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := pathOrderID(r)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCancelBody+1))
	if err != nil {
		return nil, httpkit.NewProblem(http.StatusBadRequest, "unreadable-body", "the body could not be read")
	}
	if len(body) > maxCancelBody {
		return nil, httpkit.NewProblem(http.StatusRequestEntityTooLarge, "body-too-large", fmt.Sprintf("the body exceeds %d bytes", maxCancelBody))
	}
	if len(bytes.TrimSpace(body)) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(body))
		var none struct{}
		if err := httpkit.DecodeJSON(r, maxCancelBody, &none); err != nil {
			return nil, err
		}
	}
	return cancelOrderRequest{User: user, ID: id}, nil
}

func decodeListOrders(ctx context.Context, r *http.Request) (any, error) {
	user, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	var (
		q      app.ListQuery
		fields []httpkit.FieldError
	)
	query := r.URL.Query()
	if v, ok := query["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || len(v) > 1 || n < 1 || n > app.MaxPageSize {
			fields = append(fields, httpkit.FieldError{Field: "limit", Message: fmt.Sprintf("must be an integer from 1 to %d", app.MaxPageSize)})
		}
		q.Limit = n
	}
	if v, ok := query["cursor"]; ok {
		c, err := decodeCursor(v[0])
		if err != nil || len(v) > 1 {
			fields = append(fields, httpkit.FieldError{Field: "cursor", Message: "must be a next_cursor of a previous page"})
		}
		q.After = &c
	}
	if len(fields) > 0 {
		return nil, httpkit.Validation(fields...)
	}
	return listOrdersRequest{User: user, Query: q}, nil
}

// A cursor is opaque to clients: the placement time and id of the last
// order of the previous page.
func encodeCursor(c app.Cursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.PlacedAt.UnixMicro(), 10) + "_" + string(c.ID)))
}

func decodeCursor(s string) (app.Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return app.Cursor{}, err
	}
	micros, rawID, ok := strings.Cut(string(raw), "_")
	if !ok {
		return app.Cursor{}, errors.New("malformed cursor")
	}
	n, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return app.Cursor{}, err
	}
	id, err := domain.ParseOrderID(rawID)
	if err != nil {
		return app.Cursor{}, err
	}
	return app.Cursor{PlacedAt: time.UnixMicro(n).UTC(), ID: id}, nil
}
