package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/shopmesh/shopmesh/internal/apiclient"
	"github.com/shopmesh/shopmesh/internal/wait"
)

// client calls the public API through the gateway the way a patient client
// would: network errors, timeouts, 429 and 5xx answers are retried with
// backoff, a bounded number of times and within ctx, sending exactly the
// same request again (a checkout keeps its Idempotency-Key and body).
type client struct {
	api     *apiclient.Client
	retries *atomic.Int64 // shared: requests sent again
	errors5 *atomic.Int64 // shared: 5xx answers seen
}

// errGaveUp is returned when every attempt failed.
var errGaveUp = errors.New("gave up")

const maxAttempts = 40

// do sends the request until it gets an answer that is not worth retrying
// and returns it. headers are name/value pairs.
func (c *client) do(ctx context.Context, method, path string, body any, headers ...string) (apiclient.Response, error) {
	raw, err := apiclient.Encode(body) // once: every attempt sends the same bytes
	if err != nil {
		return apiclient.Response{}, err
	}
	backoff := 100 * time.Millisecond
	var last string
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		if attempt > 1 {
			c.retries.Add(1)
			d := backoff/2 + rand.N(backoff/2+1)
			if err := wait.Sleep(ctx, d); err != nil {
				return apiclient.Response{}, fmt.Errorf("%s %s: %w (last: %s)", method, path, err, last)
			}
			backoff = min(backoff*2, 2*time.Second)
		}
		r, err := c.api.Do(ctx, method, path, raw, headers...)
		if err != nil {
			last = err.Error()
			if ctx.Err() != nil {
				return apiclient.Response{}, fmt.Errorf("%s %s: %w (last: %s)", method, path, ctx.Err(), last)
			}
			continue
		}
		if r.Status == http.StatusTooManyRequests || r.Status >= 500 {
			if r.Status >= 500 {
				c.errors5.Add(1)
			}
			last = fmt.Sprintf("%d %.200s", r.Status, r.Body)
			continue
		}
		return r, nil
	}
	return apiclient.Response{}, fmt.Errorf("%s %s: %w after %d attempts (last: %s)", method, path, errGaveUp, maxAttempts, last)
}

// expect is do that wants one status.
func (c *client) expect(ctx context.Context, want int, out any, method, path string, body any, headers ...string) error {
	r, err := c.do(ctx, method, path, body, headers...)
	if err != nil {
		return err
	}
	return apiclient.Check(method, path, r, want, out)
}

// login logs in with retries and returns the token.
func (c *client) login(ctx context.Context, email, password string) (string, error) {
	var tok struct {
		Token string `json:"token"`
	}
	err := c.expect(ctx, http.StatusOK, &tok, http.MethodPost, "/api/v1/auth/login", map[string]string{"email": email, "password": password})
	return tok.Token, err
}
