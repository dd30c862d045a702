package chaos

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopmesh/shopmesh/internal/apiclient"
	"github.com/shopmesh/shopmesh/internal/wait"
)

// Path is the way through the order saga an order is meant to take.
type Path string

// The saga paths the workload covers (DESIGN.md §3).
const (
	PathDelivered       Path = "delivered"
	PathDeclined        Path = "declined"         // tok_decline
	PathTimeout         Path = "timeout"          // tok_timeout: the provider never answers
	PathOutOfStock      Path = "out_of_stock"     // more than the scarce product's stock
	PathUndeliverable   Path = "undeliverable"    // country ZZ: the shipment fails after confirmation
	PathCancelPending   Path = "cancel_pending"   // the customer cancels while payment is pending
	PathCancelConfirmed Path = "cancel_confirmed" // the customer cancels a confirmed order before dispatch
)

// allPaths in the order the workload cycles through them.
var allPaths = []Path{PathDelivered, PathDeclined, PathTimeout, PathOutOfStock, PathUndeliverable, PathCancelPending, PathCancelConfirmed}

// product is one product a run created, with the stock it started with.
type product struct {
	ID      string
	SKU     string
	Price   int64
	Initial int
	Scarce  bool
}

type line struct {
	Product  int // index into the run's products
	Quantity int
}

// plannedOrder is one order of the seeded plan.
type plannedOrder struct {
	Index    int
	Path     Path
	Customer int
	Lines    []line
	Key      string // Idempotency-Key, reused on every retry
}

// placedOrder is what the client saw of one planned order.
type placedOrder struct {
	plannedOrder
	UserID  string
	OrderID string
	Err     error
	// Cancel is the order as the cancel call returned it (status and
	// reason), or the status of a refused cancel.
	CancelStatus int
	CancelView   orderView
}

type orderView struct {
	ID                 string  `json:"id"`
	Status             string  `json:"status"`
	CancellationReason *string `json:"cancellation_reason"`
}

func (v orderView) reason() string {
	if v.CancellationReason == nil {
		return ""
	}
	return *v.CancellationReason
}

// workload is one scenario's seeded plan and its outcome.
type workload struct {
	products  []product
	customers int
	orders    []plannedOrder
	weights   map[Path]int

	mu      sync.Mutex
	placed  []*placedOrder
	users   map[int]string // customer index -> user id
	retries atomic.Int64
	errors5 atomic.Int64
}

// planWorkload draws the orders of a scenario from its seed: which path,
// which customer, which lines. weights, when not nil, skews the paths.
func planWorkload(seed int64, runID, scenario string, orders int, weights map[Path]int) *workload {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	w := &workload{customers: max(1, (orders+1)/2), users: map[int]string{}, weights: weights}
	for i := range 3 {
		w.products = append(w.products, product{SKU: fmt.Sprintf("CH-%s-%s-%d", strings.ToUpper(runID), skuPart(scenario), i),
			Price: int64(100 + rng.IntN(4900)), Initial: 100000})
	}
	w.products = append(w.products, product{SKU: fmt.Sprintf("CH-%s-%s-S", strings.ToUpper(runID), skuPart(scenario)), Price: 999, Initial: 1, Scarce: true})
	var bag []Path
	for _, p := range allPaths {
		n := 1
		if weights != nil {
			n = weights[p]
		}
		for range n {
			bag = append(bag, p)
		}
	}
	// Every path once before any twice, then by weight.
	first := rng.Perm(len(allPaths))
	for i := range orders {
		var p Path
		if weights == nil && i < len(allPaths) {
			p = allPaths[first[i]]
		} else {
			p = bag[rng.IntN(len(bag))]
		}
		o := plannedOrder{Index: i, Path: p, Customer: i % w.customers,
			Key: fmt.Sprintf("chaos-%s-%s-%d", runID, scenario, i)}
		n := 1 + rng.IntN(2)
		for _, pi := range rng.Perm(3)[:n] {
			o.Lines = append(o.Lines, line{Product: pi, Quantity: 1 + rng.IntN(3)})
		}
		if p == PathOutOfStock {
			o.Lines = append(o.Lines, line{Product: 3, Quantity: 2})
		}
		w.orders = append(w.orders, o)
	}
	return w
}

// skuPart is a short, SKU-safe tag of a scenario name (SKUs are at most 40
// characters).
func skuPart(scenario string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(scenario))
	return fmt.Sprintf("%08X", h.Sum32())
}

func (o plannedOrder) token() string {
	switch o.Path {
	case PathDeclined:
		return "tok_decline"
	case PathTimeout, PathCancelPending:
		return "tok_timeout"
	}
	return "tok_ok"
}

func (o plannedOrder) country() string {
	if o.Path == PathUndeliverable {
		return "ZZ"
	}
	return "GB"
}

// setup creates the products through the admin API and waits until
// inventory holds their stock.
func (w *workload) setup(ctx context.Context, admin *client) error {
	for i := range w.products {
		p := &w.products[i]
		body := map[string]any{"sku": p.SKU, "name": "Chaos " + p.SKU, "description": "chaos workload",
			"price": map[string]any{"amount_minor": p.Price, "currency": "EUR"}, "initial_stock": p.Initial}
		r, err := admin.do(ctx, http.MethodPost, "/api/v1/admin/products", body)
		if err != nil {
			return fmt.Errorf("create product %s: %w", p.SKU, err)
		}
		var out struct {
			ID    string `json:"id"`
			Items []struct {
				ID  string `json:"id"`
				SKU string `json:"sku"`
			} `json:"items"`
		}
		switch r.Status {
		case http.StatusCreated:
			if err := r.Decode(&out); err != nil {
				return err
			}
			p.ID = out.ID
		case http.StatusConflict:
			// An earlier attempt created it and its answer was lost.
			if err := admin.expect(ctx, http.StatusOK, &out, http.MethodGet, "/api/v1/products?q="+url.QueryEscape(p.SKU), nil); err != nil {
				return fmt.Errorf("find product %s: %w", p.SKU, err)
			}
			for _, it := range out.Items {
				if it.SKU == p.SKU {
					p.ID = it.ID
				}
			}
			if p.ID == "" {
				return fmt.Errorf("product %s exists but is not found", p.SKU)
			}
		default:
			return fmt.Errorf("create product %s = %d %.300s", p.SKU, r.Status, r.Body)
		}
	}
	for _, p := range w.products {
		err := wait.Poll(ctx, 200*time.Millisecond, "stock", func(ctx context.Context) (bool, error) {
			r, err := admin.do(ctx, http.MethodGet, "/api/v1/admin/products/"+p.ID+"/stock", nil)
			if err != nil {
				return false, err
			}
			return r.Status == http.StatusOK, nil
		})
		if err != nil {
			return fmt.Errorf("stock of %s never appeared: %w", p.SKU, err)
		}
	}
	return nil
}

// run plays every customer concurrently (each customer's orders one after
// the other) and returns when all are placed (and the cancels sent).
func (w *workload) run(ctx context.Context, base string, httpc *http.Client, stagger time.Duration) {
	byCustomer := map[int][]plannedOrder{}
	for _, o := range w.orders {
		byCustomer[o.Customer] = append(byCustomer[o.Customer], o)
	}
	var wg sync.WaitGroup
	for c := range w.customers {
		wg.Go(func() {
			if wait.Sleep(ctx, time.Duration(c)*stagger) != nil {
				return
			}
			cl := &client{api: apiclient.New(base, httpc), retries: &w.retries, errors5: &w.errors5}
			w.customer(ctx, cl, c, byCustomer[c])
		})
	}
	wg.Wait()
}

func (w *workload) record(p *placedOrder) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.placed = append(w.placed, p)
}

func (w *workload) customer(ctx context.Context, cl *client, c int, orders []plannedOrder) {
	fail := func(err error) {
		for _, o := range orders {
			w.record(&placedOrder{plannedOrder: o, Err: err})
		}
	}
	email := fmt.Sprintf("%s.c%d@chaos.example.com", orders[0].Key, c)
	password := "chaos password 0123"
	var user struct {
		ID string `json:"id"`
	}
	r, err := cl.do(ctx, http.MethodPost, "/api/v1/auth/register", map[string]string{"email": email, "password": password, "name": fmt.Sprintf("Chaos %d", c)})
	switch {
	case err != nil:
		fail(fmt.Errorf("register: %w", err))
		return
	case r.Status == http.StatusCreated:
		_ = r.Decode(&user)
	case r.Status == http.StatusConflict: // an earlier attempt registered; its answer was lost
	default:
		fail(fmt.Errorf("register = %d %.200s", r.Status, r.Body))
		return
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := cl.expect(ctx, http.StatusOK, &tok, http.MethodPost, "/api/v1/auth/login", map[string]string{"email": email, "password": password}); err != nil {
		fail(fmt.Errorf("login: %w", err))
		return
	}
	cl.api.Token = tok.Token
	if user.ID == "" {
		user.ID = subjectOf(tok.Token)
	}
	w.mu.Lock()
	w.users[c] = user.ID
	w.mu.Unlock()
	for i, o := range orders {
		p := &placedOrder{plannedOrder: o, UserID: user.ID}
		p.Err = w.place(ctx, cl, p)
		w.record(p)
		if p.Err != nil && p.OrderID == "" {
			// The cart may still hold this order's lines: the customer stops.
			for _, rest := range orders[i+1:] {
				w.record(&placedOrder{plannedOrder: rest, UserID: user.ID, Err: errors.New("not placed: an earlier checkout of the customer failed")})
			}
			return
		}
	}
}

// place fills the cart, checks out (retrying with the same key and body)
// and, for the cancel paths, cancels.
func (w *workload) place(ctx context.Context, cl *client, p *placedOrder) error {
	for _, l := range p.Lines {
		pid := w.products[l.Product].ID
		// The cart learns products from catalog events: until it has, it
		// refuses the line, so wait (bounded by ctx).
		err := wait.Poll(ctx, 200*time.Millisecond, "cart line", func(ctx context.Context) (bool, error) {
			r, err := cl.do(ctx, http.MethodPut, "/api/v1/cart/items/"+pid, map[string]int{"quantity": l.Quantity})
			if err != nil {
				return false, err
			}
			return apiclient.CartItemSet(r)
		})
		if err != nil {
			return fmt.Errorf("add %s to cart: %w", w.products[l.Product].SKU, err)
		}
	}
	body := map[string]any{
		"shipping_address": map[string]string{"name": "Chaos Customer", "line1": "1 Fault Street", "city": "London", "postal_code": "N1 9GU", "country": p.country()},
		"payment":          map[string]string{"token": p.token()},
	}
	var out struct {
		OrderID string `json:"order_id"`
	}
	if err := cl.expect(ctx, http.StatusAccepted, &out, http.MethodPost, "/api/v1/cart/checkout", body, "Idempotency-Key", p.Key); err != nil {
		return fmt.Errorf("checkout: %w", err)
	}
	p.OrderID = out.OrderID
	switch p.Path {
	case PathCancelPending:
		return w.cancel(ctx, cl, p, false)
	case PathCancelConfirmed:
		return w.cancel(ctx, cl, p, true)
	}
	return nil
}

// cancel waits until the order exists (and, when confirmed is set, until it
// left pending), then cancels it and keeps what the API answered.
func (w *workload) cancel(ctx context.Context, cl *client, p *placedOrder, confirmed bool) error {
	// Bounded: an order that never shows up or never leaves pending is
	// reported by the ledger (lost or stuck); the customer moves on.
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err := wait.Poll(wctx, 250*time.Millisecond, "get order", func(wctx context.Context) (bool, error) {
		var v orderView
		r, err := cl.do(wctx, http.MethodGet, "/api/v1/orders/"+p.OrderID, nil)
		if err != nil {
			return false, err
		}
		if r.Status == http.StatusNotFound {
			return false, nil // the order service has not consumed the checkout yet
		}
		if r.Status != http.StatusOK {
			return false, fmt.Errorf("get order = %d %.200s", r.Status, r.Body)
		}
		if err := r.Decode(&v); err != nil {
			return false, err
		}
		return !confirmed || v.Status != "pending", nil
	})
	if err != nil {
		return fmt.Errorf("wait for order %s: %w", p.OrderID, err)
	}
	r, err := cl.do(ctx, http.MethodPost, "/api/v1/orders/"+p.OrderID+"/cancel", nil)
	if err != nil {
		return fmt.Errorf("cancel: %w", err)
	}
	p.CancelStatus = r.Status
	if r.Status == http.StatusAccepted {
		_ = r.Decode(&p.CancelView)
	}
	if r.Status != http.StatusAccepted && r.Status != http.StatusConflict {
		return fmt.Errorf("cancel = %d %.200s", r.Status, r.Body)
	}
	return nil
}

// subjectOf reads the user id out of a JWT without verifying it (the
// gateway does that); used when a lost register answer left no id.
func subjectOf(token string) string {
	parts := strings.SplitN(token, ".", 3)
	if len(parts) != 3 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		return ""
	}
	return claims.Sub
}
