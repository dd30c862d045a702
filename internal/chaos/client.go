package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"
)

// client calls the public API through the gateway the way a patient client
// would: network errors, timeouts, 429 and 5xx answers are retried with
// backoff, a bounded number of times and within ctx, sending exactly the
// same request again (a checkout keeps its Idempotency-Key and body).
type client struct {
	base    string
	http    *http.Client
	token   string
	retries *atomic.Int64 // shared: requests sent again
	errors5 *atomic.Int64 // shared: 5xx answers seen
}

// response is a final answer of the API.
type response struct {
	status int
	body   []byte
}

func (r response) decode(v any) error {
	if err := json.Unmarshal(r.body, v); err != nil {
		return fmt.Errorf("decode %d answer %.200s: %w", r.status, r.body, err)
	}
	return nil
}

// errGaveUp is returned when every attempt failed.
var errGaveUp = errors.New("gave up")

const maxAttempts = 40

// do sends the request until it gets an answer that is not worth retrying
// and returns it. headers are name/value pairs.
func (c *client) do(ctx context.Context, method, path string, body any, headers ...string) (response, error) {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return response{}, err
		}
	}
	backoff := 100 * time.Millisecond
	var last string
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		if attempt > 1 {
			c.retries.Add(1)
			d := backoff/2 + rand.N(backoff/2+1)
			select {
			case <-ctx.Done():
				return response{}, fmt.Errorf("%s %s: %w (last: %s)", method, path, ctx.Err(), last)
			case <-time.After(d):
			}
			backoff = min(backoff*2, 2*time.Second)
		}
		r, err := c.once(ctx, method, path, raw, headers)
		if err != nil {
			last = err.Error()
			if ctx.Err() != nil {
				return response{}, fmt.Errorf("%s %s: %w (last: %s)", method, path, ctx.Err(), last)
			}
			continue
		}
		if r.status == http.StatusTooManyRequests || r.status >= 500 {
			if r.status >= 500 {
				c.errors5.Add(1)
			}
			last = fmt.Sprintf("%d %.200s", r.status, r.body)
			continue
		}
		return r, nil
	}
	return response{}, fmt.Errorf("%s %s: %w after %d attempts (last: %s)", method, path, errGaveUp, maxAttempts, last)
}

func (c *client) once(ctx context.Context, method, path string, raw []byte, headers []string) (response, error) {
	var rd io.Reader
	if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return response{}, err
	}
	if raw != nil {
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
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, body: b}, nil
}

// expect is do that wants one status.
func (c *client) expect(ctx context.Context, want int, out any, method, path string, body any, headers ...string) error {
	r, err := c.do(ctx, method, path, body, headers...)
	if err != nil {
		return err
	}
	if r.status != want {
		return fmt.Errorf("%s %s = %d %.300s, want %d", method, path, r.status, r.body, want)
	}
	if out != nil {
		return r.decode(out)
	}
	return nil
}

// poll calls cond every interval until it reports done, fails, or ctx ends.
func poll(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	for {
		done, err := cond()
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
