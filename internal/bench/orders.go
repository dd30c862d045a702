package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// apiClient is the load generator's HTTP client for the gateway: one
// request at a time per call, each bounded by the client's timeout.
type apiClient struct {
	base  string
	http  *http.Client
	token string
}

type apiResponse struct {
	status int
	body   []byte
}

func (c *apiClient) do(ctx context.Context, method, path string, body any, headers ...string) (apiResponse, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return apiResponse{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return apiResponse{}, err
	}
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
		return apiResponse{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return apiResponse{}, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return apiResponse{status: resp.StatusCode, body: b}, nil
}

// expect does a request and decodes the answer into out; any other
// status than want is an error.
func (c *apiClient) expect(ctx context.Context, want int, out any, method, path string, body any, headers ...string) error {
	r, err := c.do(ctx, method, path, body, headers...)
	if err != nil {
		return err
	}
	if r.status != want {
		return fmt.Errorf("%s %s = %d, want %d: %.300s", method, path, r.status, want, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

// shop is the orders workload on one system: products seeded through the
// admin API and one registered customer per worker (a customer has one
// cart, so a worker never shares it).
type shop struct {
	sys       *system
	http      *http.Client
	products  []string // product IDs
	customers []*apiClient
	seq       atomic.Int64 // idempotency keys and e-mail addresses
	id        string
}

// orderOutcome is one checkout: when it was sent, accepted, and first seen
// confirmed.
type orderOutcome struct {
	sent, confirmed time.Time
	err             error
}

// newShop seeds products and registers workers customers.
func newShop(ctx context.Context, sys *system, id string, products, workers int) (*shop, error) {
	// Per-request timeouts; connections enough for every worker and poller.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 4*workers, 4*workers
	sh := &shop{sys: sys, id: id, http: &http.Client{Timeout: 10 * time.Second, Transport: tr}}
	admin := &apiClient{base: sys.gateway, http: sh.http, token: sys.token}
	for i := range products {
		sku := fmt.Sprintf("BENCH-%s-%03d", strings.ToUpper(id), i)
		body := map[string]any{"sku": sku, "name": "Bench " + sku, "description": "bench workload",
			"price": map[string]any{"amount_minor": 1000 + i, "currency": "EUR"}, "initial_stock": 1_000_000}
		var out struct {
			ID string `json:"id"`
		}
		if err := admin.expect(ctx, http.StatusCreated, &out, http.MethodPost, "/api/v1/admin/products", body); err != nil {
			return nil, fmt.Errorf("create product %s: %w", sku, err)
		}
		sh.products = append(sh.products, out.ID)
	}
	sh.customers = make([]*apiClient, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4) // registration hashes a password: keep it off the measurement's cores
	for w := range workers {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			sh.customers[w], errs[w] = sh.register(ctx, w)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// The cart learns products from catalog events: wait until it accepts
	// every product (bounded), then empty the cart again.
	c := sh.customers[0]
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, pid := range sh.products {
		err := waitFor(wctx, 100*time.Millisecond, "cart to know product "+pid, func(ctx context.Context) (bool, error) {
			r, err := c.do(ctx, http.MethodPut, "/api/v1/cart/items/"+pid, map[string]int{"quantity": 1})
			if err != nil {
				return false, err
			}
			switch r.status {
			case http.StatusOK:
				return true, nil
			case http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity:
				return false, nil
			}
			return false, fmt.Errorf("add to cart = %d %.200s", r.status, r.body)
		})
		if err != nil {
			return nil, err
		}
		r, err := c.do(wctx, http.MethodDelete, "/api/v1/cart/items/"+pid, nil)
		if err != nil {
			return nil, err
		}
		if r.status >= 300 {
			return nil, fmt.Errorf("remove from cart = %d %.200s", r.status, r.body)
		}
	}
	return sh, nil
}

func (sh *shop) register(ctx context.Context, n int) (*apiClient, error) {
	c := &apiClient{base: sh.sys.gateway, http: sh.http}
	email := fmt.Sprintf("c%d.%s.%s@bench.example.com", n, sh.id, sh.sys.label)
	password := "bench password 0123"
	if err := c.expect(ctx, http.StatusCreated, nil, http.MethodPost, "/api/v1/auth/register",
		map[string]string{"email": email, "password": password, "name": fmt.Sprintf("Bench %d", n)}); err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := c.expect(ctx, http.StatusOK, &tok, http.MethodPost, "/api/v1/auth/login", map[string]string{"email": email, "password": password}); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	c.token = tok.Token
	return c, nil
}

// checkout fills c's cart with one or two products and checks out with
// tok_ok and a fresh Idempotency-Key. It returns the order's ID and when
// the checkout was sent.
func (sh *shop) checkout(ctx context.Context, c *apiClient) (string, time.Time, error) {
	lines := 1 + rand.IntN(2)
	for range lines {
		pid := sh.products[rand.IntN(len(sh.products))]
		if err := c.expect(ctx, http.StatusOK, nil, http.MethodPut, "/api/v1/cart/items/"+pid, map[string]int{"quantity": 1 + rand.IntN(2)}); err != nil {
			return "", time.Time{}, fmt.Errorf("add to cart: %w", err)
		}
	}
	body := map[string]any{
		"shipping_address": map[string]string{"name": "Bench Customer", "line1": "1 Load Street", "city": "London", "postal_code": "N1 9GU", "country": "GB"},
		"payment":          map[string]string{"token": "tok_ok"},
	}
	key := fmt.Sprintf("bench-%s-%s-%d", sh.id, sh.sys.label, sh.seq.Add(1))
	var out struct {
		OrderID string `json:"order_id"`
	}
	sent := time.Now()
	if err := c.expect(ctx, http.StatusAccepted, &out, http.MethodPost, "/api/v1/cart/checkout", body, "Idempotency-Key", key); err != nil {
		return "", sent, fmt.Errorf("checkout: %w", err)
	}
	return out.OrderID, sent, nil
}

// confirmedStatuses are the order states at or past confirmation; failed
// ones end the wait with an error.
var (
	confirmedStatuses = []string{"confirmed", "shipped", "dispatched", "in_transit", "delivered"}
	failedStatuses    = []string{"cancelled", "canceled", "failed", "rejected", "declined"}
)

// awaitConfirmed polls the order until it is confirmed (or later), fails,
// or timeout passes, and returns when it was first seen confirmed. The
// interval starts at poll and grows by 15% per poll up to a second: slow
// orders are asked less often, so that waiting for a backlog does not
// become most of the load (resolution: about 15% of the latency plus poll).
func (sh *shop) awaitConfirmed(ctx context.Context, c *apiClient, orderID string, timeout, poll time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	interval := poll
	for {
		r, err := c.do(ctx, http.MethodGet, "/api/v1/orders/"+orderID, nil)
		if err != nil {
			return time.Time{}, fmt.Errorf("wait for order %s: %w", orderID, err)
		}
		switch r.status {
		case http.StatusOK:
			var v struct {
				Status string `json:"status"`
			}
			if err := json.Unmarshal(r.body, &v); err != nil {
				return time.Time{}, fmt.Errorf("order %s: %w", orderID, err)
			}
			switch {
			case slices.Contains(confirmedStatuses, v.Status):
				return time.Now(), nil
			case slices.Contains(failedStatuses, v.Status):
				return time.Time{}, fmt.Errorf("order %s ended %s", orderID, v.Status)
			}
		case http.StatusNotFound: // the order service has not consumed the checkout yet
		default:
			return time.Time{}, fmt.Errorf("get order %s = %d %.200s", orderID, r.status, r.body)
		}
		if err := sleep(ctx, interval); err != nil {
			return time.Time{}, fmt.Errorf("order %s not confirmed within %s", orderID, timeout)
		}
		interval = min(interval*115/100, time.Second)
	}
}

// loadResult is what one load phase measured.
type loadResult struct {
	outcomes []orderOutcome
	began    time.Time
	late     int // fixed rate: checkouts started more than 100ms after their slot
}

// confirmedLatencies returns the sorted checkout → confirmed latencies and
// the errors of the checkouts that did not get there.
func (lr loadResult) confirmedLatencies() ([]time.Duration, []error) {
	var ds []time.Duration
	var errs []error
	for _, o := range lr.outcomes {
		if o.err != nil {
			errs = append(errs, o.err)
			continue
		}
		ds = append(ds, o.confirmed.Sub(o.sent))
	}
	slices.Sort(ds)
	return ds, errs
}

// throughput is the confirmed checkouts per second from the first
// checkout sent to the last confirmation seen.
func (lr loadResult) throughput() float64 {
	var n int
	var last time.Time
	for _, o := range lr.outcomes {
		if o.err == nil {
			n++
			if o.confirmed.After(last) {
				last = o.confirmed
			}
		}
	}
	if n == 0 {
		return 0
	}
	return float64(n) / last.Sub(lr.began).Seconds()
}

// drive runs one load phase with the shop's workers, one customer each.
// rate > 0 is open-loop: checkout i is due at i/rate from the start,
// whether earlier ones finished or not (a late worker is counted, not
// waited for); rate 0 is closed-loop at full speed: each worker waits for
// its order to be confirmed before the next checkout, so at most workers
// orders are in flight and the figure is what the system sustains, not how
// fast a backlog can be queued. Checkouts start for
// duration; each accepted one is then followed by a poller until
// confirmed, at most confirmTimeout, polling every poll. Every loop is bounded by the phase's
// duration plus confirmTimeout.
func (sh *shop) drive(ctx context.Context, rate int, duration, confirmTimeout, poll time.Duration) loadResult {
	ctx, cancel := context.WithTimeout(ctx, duration+confirmTimeout+30*time.Second)
	defer cancel()
	lr := loadResult{began: time.Now()}
	end := lr.began.Add(duration)
	var mu sync.Mutex
	record := func(o orderOutcome) {
		mu.Lock()
		lr.outcomes = append(lr.outcomes, o)
		mu.Unlock()
	}
	var pollers sync.WaitGroup
	// place checks out and follows the order until confirmed: in its own
	// goroutine when open-loop, in the worker's when closed-loop.
	place := func(c *apiClient, wait bool) {
		orderID, sent, err := sh.checkout(ctx, c)
		if err != nil {
			record(orderOutcome{sent: sent, err: err})
			return
		}
		follow := func() {
			at, err := sh.awaitConfirmed(ctx, c, orderID, confirmTimeout, poll)
			record(orderOutcome{sent: sent, confirmed: at, err: err})
		}
		if wait {
			follow()
			return
		}
		pollers.Go(follow)
	}

	var workers sync.WaitGroup
	if rate > 0 {
		total := max(1, int(duration.Seconds()*float64(rate)))
		slots := make(chan time.Time, total)
		var late atomic.Int64
		for _, c := range sh.customers {
			workers.Go(func() {
				for due := range slots {
					if time.Since(due) > 100*time.Millisecond {
						late.Add(1)
					}
					place(c, false)
				}
			})
		}
		interval := time.Duration(float64(time.Second) / float64(rate))
		for i := range total {
			due := lr.began.Add(time.Duration(i) * interval)
			if sleep(ctx, time.Until(due)) != nil {
				break
			}
			slots <- due
		}
		close(slots)
		workers.Wait()
		lr.late = int(late.Load())
	} else {
		for _, c := range sh.customers {
			workers.Go(func() {
				for time.Now().Before(end) && ctx.Err() == nil {
					place(c, true)
				}
			})
		}
		workers.Wait()
	}
	pollers.Wait()
	return lr
}
