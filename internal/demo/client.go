package demo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/shopmesh/shopmesh/internal/apiclient"
	"github.com/shopmesh/shopmesh/internal/wait"
)

// client calls the public API as one user (or anonymously, with no token),
// waiting out 429 answers.
type client struct {
	api *apiclient.Client
}

func newClient(hc *http.Client, base string) *client {
	return &client{api: apiclient.New(base, hc)}
}

// as returns a client of the same gateway that sends token.
func (c *client) as(token string) *client {
	return &client{api: c.api.As(token)}
}

// statusError is an answer with another status than the one expected,
// with the RFC 9457 problem's title and detail when the gateway sent one.
type statusError = apiclient.StatusError

// hasStatus reports whether err is an answer with the given status.
func hasStatus(err error, status int) bool { return apiclient.HasStatus(err, status) }

// call sends a request and decodes the answer into out (when not nil)
// unless its status differs from want, which is a *statusError. body is
// sent as JSON when not nil; headers are name/value pairs. A 429 answer is
// retried after its Retry-After, for as long as ctx allows.
func (c *client) call(ctx context.Context, want int, out any, method, path string, body any, headers ...string) error {
	raw, err := apiclient.Encode(body)
	if err != nil {
		return fmt.Errorf("%s %s: encode body: %w", method, path, err)
	}
	for {
		r, err := c.api.Do(ctx, method, path, raw, headers...)
		if err != nil {
			return err
		}
		if r.Status == http.StatusTooManyRequests {
			retry := time.Second
			if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err == nil && s > 0 {
				retry = time.Duration(s) * time.Second
			}
			if err := wait.Sleep(ctx, retry); err != nil {
				return fmt.Errorf("%s %s: rate limited: %w", method, path, err)
			}
			continue
		}
		return apiclient.Check(method, path, r, want, out)
	}
}

// permanentError ends a poll at once; every other error is retried.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// permanent marks err as one that waiting cannot cure.
func permanent(err error) error { return permanentError{err} }

// poll calls check every interval until it returns nil or a permanent
// error, or the deadline passes. Any other error means "not yet": its text
// is kept as the detail of the timeout error, so a wait that fails says what
// it saw last. Requests check makes are bounded by the same deadline.
func poll(ctx context.Context, deadline time.Time, every time.Duration, what string, check func(ctx context.Context) error) error {
	pctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var last error
	for {
		err := check(pctx)
		if err == nil {
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return fmt.Errorf("%s: %w", what, perm.err)
		}
		// A request cut short by the deadline says less than the answer before it.
		if last == nil || pctx.Err() == nil {
			last = err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		if pctx.Err() != nil || wait.Sleep(pctx, every) != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s: %w", what, ctx.Err())
			}
			return fmt.Errorf("%s: not within the deadline (last: %v)", what, last)
		}
	}
}
