package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxAnswer bounds how much of an answer is read: the API's answers are
// small, and a misdirected URL must not fill memory.
const maxAnswer = 4 << 20

// client calls the public API as one user (or anonymously, with no token).
type client struct {
	http  *http.Client
	base  string
	token string
}

// as returns a client of the same gateway that sends token.
func (c *client) as(token string) *client {
	return &client{http: c.http, base: c.base, token: token}
}

// statusError is an answer with another status than the one expected. It
// keeps the RFC 9457 problem's title and detail when the gateway sent one.
type statusError struct {
	Method, Path string
	Status       int
	Title        string
	Detail       string
	Body         string
}

func (e *statusError) Error() string {
	msg := e.Detail
	if msg == "" {
		msg = e.Title
	}
	if msg == "" {
		msg = e.Body
	}
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, msg)
}

// hasStatus reports whether err is an answer with the given status.
func hasStatus(err error, status int) bool {
	var se *statusError
	return errors.As(err, &se) && se.Status == status
}

// call sends a request and decodes the answer into out (when not nil)
// unless its status differs from want, which is a *statusError. body is
// sent as JSON when not nil; headers are name/value pairs. A 429 answer is
// retried after its Retry-After, for as long as ctx allows.
func (c *client) call(ctx context.Context, want int, out any, method, path string, body any, headers ...string) error {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return fmt.Errorf("%s %s: encode body: %w", method, path, err)
		}
	}
	for {
		status, answer, retry, err := c.send(ctx, method, path, raw, headers)
		if err != nil {
			return err
		}
		if status == http.StatusTooManyRequests {
			if err := sleep(ctx, retry); err != nil {
				return fmt.Errorf("%s %s: rate limited: %w", method, path, err)
			}
			continue
		}
		if status != want {
			se := &statusError{Method: method, Path: path, Status: status, Body: strings.TrimSpace(string(answer))}
			var p struct{ Title, Detail string }
			if json.Unmarshal(answer, &p) == nil {
				se.Title, se.Detail = p.Title, p.Detail
			}
			return se
		}
		if out != nil {
			if err := json.Unmarshal(answer, out); err != nil {
				return fmt.Errorf("%s %s: decode %d answer: %w", method, path, status, err)
			}
		}
		return nil
	}
}

// send makes one request and returns the status, body and, for a 429, how
// long the gateway asks to wait.
func (c *client) send(ctx context.Context, method, path string, body []byte, headers []string) (int, []byte, time.Duration, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return 0, nil, 0, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	retry := time.Second
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retry = time.Duration(s) * time.Second
	}
	return resp.StatusCode, answer, retry, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
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
		if pctx.Err() != nil || sleep(pctx, every) != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s: %w", what, ctx.Err())
			}
			return fmt.Errorf("%s: not within the deadline (last: %v)", what, last)
		}
	}
}
