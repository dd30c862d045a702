package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopmesh/shopmesh/internal/apiclient"
	"github.com/shopmesh/shopmesh/internal/wait"
)

// shop is the orders workload on one system: products seeded through the
// admin API and one registered customer per worker (a customer has one
// cart, so a worker never shares it).
type shop struct {
	sys       *system
	http      *http.Client
	products  []string // product IDs
	customers []*apiclient.Client
	seq       atomic.Int64 // idempotency keys and e-mail addresses
	id        string
	polls     atomic.Int64 // order reads by all followers
}

// orderOutcome is one checkout: when it was sent and when its order
// reached each saga step (the order's timeline).
type orderOutcome struct {
	sent time.Time
	sagaSteps
	err error
}

// sagaSteps are the times of an order's timeline entries on the way to
// confirmed: placed (the order service consumed the checkout), stock
// reserved (inventory answered) and confirmed (payment answered). Each
// step after the first is two deliveries: the order service's event to a
// participant and its answer back.
type sagaSteps struct {
	placed, reserved, confirmed time.Time
}

// stepNames name the intervals sagaSteps.intervals returns.
var stepNames = [...]string{"checkout → placed", "placed → stock reserved", "stock reserved → confirmed"}

// intervals are the time from sent to placed and between the steps.
func (s sagaSteps) intervals(sent time.Time) [len(stepNames)]time.Duration {
	return [...]time.Duration{s.placed.Sub(sent), s.reserved.Sub(s.placed), s.confirmed.Sub(s.reserved)}
}

// newShop seeds products and registers workers customers.
func newShop(ctx context.Context, sys *system, id string, products, workers int) (*shop, error) {
	// Per-request timeouts; connections enough for every worker and poller.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 4*workers, 4*workers
	sh := &shop{sys: sys, id: id, http: &http.Client{Timeout: 10 * time.Second, Transport: tr}}
	admin := apiclient.New(sys.Gateway, sh.http).As(sys.admin.Token)
	for i := range products {
		sku := fmt.Sprintf("BENCH-%s-%03d", strings.ToUpper(id), i)
		out, err := admin.CreateProduct(ctx, apiclient.NewProduct{SKU: sku, Name: "Bench " + sku, Description: "bench workload",
			Price: apiclient.Money{AmountMinor: int64(1000 + i), Currency: "EUR"}, InitialStock: 1_000_000})
		if err != nil {
			return nil, fmt.Errorf("create product %s: %w", sku, err)
		}
		sh.products = append(sh.products, out.ID)
	}
	sh.customers = make([]*apiclient.Client, workers)
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
		err := wait.Poll(wctx, 100*time.Millisecond, "cart to know product "+pid, func(ctx context.Context) (bool, error) {
			r, err := c.Do(ctx, http.MethodPut, "/api/v1/cart/items/"+pid, map[string]int{"quantity": 1})
			if err != nil {
				return false, err
			}
			return apiclient.CartItemSet(r)
		})
		if err != nil {
			return nil, err
		}
		r, err := c.Do(wctx, http.MethodDelete, "/api/v1/cart/items/"+pid, nil)
		if err != nil {
			return nil, err
		}
		if r.Status >= 300 {
			return nil, fmt.Errorf("remove from cart = %d %.200s", r.Status, r.Body)
		}
	}
	return sh, nil
}

func (sh *shop) register(ctx context.Context, n int) (*apiclient.Client, error) {
	c := apiclient.New(sh.sys.Gateway, sh.http)
	email := fmt.Sprintf("c%d.%s.%s@bench.example.com", n, sh.id, sh.sys.label)
	password := "bench password 0123"
	if err := c.Register(ctx, email, password, fmt.Sprintf("Bench %d", n)); err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	if err := c.Login(ctx, email, password); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	return c, nil
}

// checkout fills c's cart with one or two products and checks out with
// tok_ok and a fresh Idempotency-Key. It returns the order's ID and when
// the checkout was sent.
func (sh *shop) checkout(ctx context.Context, c *apiclient.Client) (string, time.Time, error) {
	lines := 1 + rand.IntN(2)
	for range lines {
		pid := sh.products[rand.IntN(len(sh.products))]
		if err := c.SetCartItem(ctx, pid, 1+rand.IntN(2)); err != nil {
			return "", time.Time{}, fmt.Errorf("add to cart: %w", err)
		}
	}
	addr := apiclient.Address{Name: "Bench Customer", Line1: "1 Load Street", City: "London", PostalCode: "N1 9GU", Country: "GB"}
	key := fmt.Sprintf("bench-%s-%s-%d", sh.id, sh.sys.label, sh.seq.Add(1))
	sent := time.Now()
	orderID, err := c.Checkout(ctx, key, addr, "tok_ok")
	if err != nil {
		return "", sent, fmt.Errorf("checkout: %w", err)
	}
	return orderID, sent, nil
}

// confirmedStatuses are the order states at or past confirmation; failed
// ones end the wait with an error.
var (
	confirmedStatuses = []string{"confirmed", "shipped", "dispatched", "in_transit", "delivered"}
	failedStatuses    = []string{"cancelled", "canceled", "failed", "rejected", "declined"}
)

// orderWait is how long one read of an order may wait for it to change
// (Prefer: wait).
const orderWait = "wait=5"

// awaitConfirmed follows the order until it is confirmed (or later), fails,
// or timeout passes, and returns when it reached each step to confirmed:
// the times of the entries of the order's timeline (the order service's
// clock, on this machine), so the figures do not depend on when the load
// generator learnt of them. Every read is a long poll, as a client
// following its order would send it: If-None-Match with the order's last
// entity tag and `Prefer: wait`, so the order service answers at the
// order's next change (or its appearance), and a checkout costs about one
// read per change of the order until it is confirmed.
func (sh *shop) awaitConfirmed(ctx context.Context, c *apiclient.Client, orderID string, timeout time.Duration) (sagaSteps, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	etag := ""
	for {
		sh.polls.Add(1)
		headers := []string{"Prefer", orderWait}
		if etag != "" {
			headers = append(headers, "If-None-Match", etag)
		}
		r, err := c.Do(ctx, http.MethodGet, "/api/v1/orders/"+orderID, nil, headers...)
		if ctx.Err() != nil {
			return sagaSteps{}, fmt.Errorf("order %s not confirmed within %s", orderID, timeout)
		}
		if err != nil {
			return sagaSteps{}, fmt.Errorf("wait for order %s: %w", orderID, err)
		}
		switch r.Status {
		case http.StatusOK:
			var v struct {
				Status   string `json:"status"`
				Timeline []struct {
					Type string    `json:"type"`
					At   time.Time `json:"at"`
				} `json:"timeline"`
			}
			if err := json.Unmarshal(r.Body, &v); err != nil {
				return sagaSteps{}, fmt.Errorf("order %s: %w", orderID, err)
			}
			switch {
			case slices.Contains(confirmedStatuses, v.Status):
				var s sagaSteps
				for _, e := range v.Timeline {
					switch e.Type {
					case "placed":
						s.placed = e.At
					case "stock_reserved":
						s.reserved = e.At
					case "confirmed":
						s.confirmed = e.At
					}
				}
				if s.placed.IsZero() || s.reserved.IsZero() || s.confirmed.IsZero() {
					return sagaSteps{}, fmt.Errorf("order %s is %s without placed, stock_reserved and confirmed entries in its timeline", orderID, v.Status)
				}
				return s, nil
			case slices.Contains(failedStatuses, v.Status):
				return sagaSteps{}, fmt.Errorf("order %s ended %s", orderID, v.Status)
			}
			if etag = r.Header.Get("ETag"); etag == "" {
				return sagaSteps{}, fmt.Errorf("order %s: the answer has no ETag", orderID)
			}
		case http.StatusNotModified: // no change within the wait
		case http.StatusNotFound: // the order service has not consumed the checkout yet
		default:
			return sagaSteps{}, fmt.Errorf("get order %s = %d %.200s", orderID, r.Status, r.Body)
		}
	}
}

// loadResult is what one load phase measured.
type loadResult struct {
	outcomes []orderOutcome
	began    time.Time
	late     int // fixed rate: checkouts started more than 100ms after their slot
	polls    int // order reads by the pollers
}

// pollsPerCheckout is the order reads per checkout sent.
func (lr loadResult) pollsPerCheckout() float64 {
	if len(lr.outcomes) == 0 {
		return math.NaN()
	}
	return float64(lr.polls) / float64(len(lr.outcomes))
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

// stepLatencies returns, for each of stepNames, the sorted times the
// confirmed checkouts spent in it.
func (lr loadResult) stepLatencies() [len(stepNames)][]time.Duration {
	var out [len(stepNames)][]time.Duration
	for _, o := range lr.outcomes {
		if o.err != nil {
			continue
		}
		for i, d := range o.intervals(o.sent) {
			out[i] = append(out[i], d)
		}
	}
	for _, ds := range out {
		slices.Sort(ds)
	}
	return out
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
// duration; each accepted one is then followed until confirmed, at most
// confirmTimeout (see awaitConfirmed). Every loop is bounded by the phase's
// duration plus confirmTimeout.
func (sh *shop) drive(ctx context.Context, rate int, duration, confirmTimeout time.Duration) loadResult {
	ctx, cancel := context.WithTimeout(ctx, duration+confirmTimeout+30*time.Second)
	defer cancel()
	lr := loadResult{began: time.Now()}
	polls := sh.polls.Load()
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
	place := func(c *apiclient.Client, wait bool) {
		orderID, sent, err := sh.checkout(ctx, c)
		if err != nil {
			record(orderOutcome{sent: sent, err: err})
			return
		}
		follow := func() {
			steps, err := sh.awaitConfirmed(ctx, c, orderID, confirmTimeout)
			record(orderOutcome{sent: sent, sagaSteps: steps, err: err})
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
			if wait.Sleep(ctx, time.Until(due)) != nil {
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
	lr.polls = int(sh.polls.Load() - polls)
	return lr
}
