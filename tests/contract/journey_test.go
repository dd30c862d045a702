// Package contract holds shopmesh's contract tests, run against the real
// binary with every service on fresh databases and a fresh vhost:
//
//   - producers: every message the services really publish on RabbitMQ
//     during the customer journey and its failure paths, checked against
//     its schema and the envelope rules;
//   - HTTP: every response of that journey, successes and problems, checked
//     against the gateway's OpenAPI 3.1 document;
//   - consumers: the golden example of every version of every type fed to
//     each of its consumers, twice, accepted and applied once; unknown types
//     and versions dead-lettered with a reason naming them; a retained older
//     version of an evolved event still processed.
//
// The compatibility gate (schemas against the released snapshot) is tested
// with the contracts package itself.
package contract

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/gateway"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/tests/system"
)

const sagaTimeout = 45 * time.Second

// bonusFailDomain is the e-mail domain whose loyalty enrolment bonus fails.
const bonusFailDomain = "bonus-fails.example.com"

// TestJourneyContracts drives every service through the public API along
// each saga path while recording what goes over the broker and what the
// gateway answers, then checks both against their contracts.
func TestJourneyContracts(t *testing.T) {
	t.Parallel()
	sys := system.Start(t, system.Options{Env: map[string]string{
		// Short enough for the timeout path, long enough for tok_ok to win
		// on a machine starved of CPU (4 s was not, once).
		"SHOPMESH_ORDER_PAYMENT_TIMEOUT": "12s",
		// Long enough to cancel a confirmed order before dispatch.
		"SHOPMESH_SHIPPING_DISPATCH_DELAY": "3s",
		"SHOPMESH_SHIPPING_DELIVERY_DELAY": "300ms",
		// Customers at this domain drive loyalty's enrolment rollback.
		"SHOPMESH_LOYALTY_BONUS_FAIL_DOMAIN": bonusFailDomain,
	}})
	capt := startCapture(t, sys.AMQPURL)

	served := sys.Client().Do("GET", "/api/openapi.json", nil)
	if served.Status != http.StatusOK {
		t.Fatalf("GET /api/openapi.json = %d %s", served.Status, trim(served.Body))
	}
	if string(served.Body) != string(gateway.OpenAPI()) {
		t.Errorf("the served OpenAPI document differs from gateway.OpenAPI()")
	}
	h := newHTTPContract(loadOpenAPI(t, served.Body))
	h.check(t, "GET", "/api/openapi.json", served)

	t.Run("journey", func(t *testing.T) { journey(t, sys, h) })
	waitSettled(t, sys)

	t.Run("producers", func(t *testing.T) {
		checkProducers(t, capt)
		// What every producer sent, every consumer could apply.
		for _, svc := range system.Services {
			for _, d := range deadLetters(t, sys, svc) {
				t.Errorf("%s dead-lettered %s %s: %s", svc, d.Type, d.MessageID, d.Reason)
			}
		}
	})
	t.Run("http", func(t *testing.T) {
		checkRoutesDocumented(t, h.api)
		h.checkCoverage(t)
	})
}

// checkProducers validates every captured message and reports the types
// never observed.
func checkProducers(t *testing.T, capt *capture) {
	msgs := capt.snapshot()
	if len(msgs) == 0 {
		t.Fatal("no message was captured")
	}
	byID := map[string]int{}
	for i, d := range msgs {
		id, _ := d.Headers[outbox.HeaderID].(string)
		byID[id] = i
	}
	// Violations are reported once per type and rule, with an example.
	type finding struct{ typ, rule string }
	count := map[finding]int{}
	example := map[finding]string{}
	for _, d := range msgs {
		bad := checkEnvelope(d)
		// A cause must be a message that really went over the broker before
		// its effect, and the effect inherits its correlation.
		if cause, _ := d.Headers[outbox.HeaderCausationID].(string); cause != "" {
			if i, ok := byID[cause]; !ok {
				bad = append(bad, "causation_id names no published message")
			} else if d.Headers[outbox.HeaderCorrelationID] != msgs[i].Headers[outbox.HeaderCorrelationID] {
				bad = append(bad, "correlation_id differs from its cause's")
			}
		}
		for _, rule := range bad {
			f := finding{d.RoutingKey, rule}
			if count[f]++; count[f] == 1 {
				example[f] = fmt.Sprintf("message %s from %s, headers %v, payload %s", d.MessageId, d.Exchange, d.Headers, trim(d.Body))
			}
		}
	}
	for _, f := range slices.SortedFunc(maps.Keys(count), func(a, b finding) int { return strings.Compare(a.typ+a.rule, b.typ+b.rule) }) {
		t.Errorf("%s: %s (%d messages), e.g. %s", f.typ, f.rule, count[f], example[f])
	}

	seen := capt.types()
	latest := map[string]string{} // family -> latest version's name
	for _, e := range contracts.Registry() {
		if cur, ok := latest[family(e.Name)]; !ok || versionOf(cur) < e.Version {
			latest[family(e.Name)] = e.Name
		}
	}
	running := map[string]bool{}
	for _, s := range system.Services {
		running[s] = true
	}
	var never, excused []string
	for _, e := range contracts.Registry() {
		newest := latest[family(e.Name)]
		if newest != e.Name {
			// Producers publish the latest version only; older ones live on
			// in retained logs (see the retained order.placed.v1 test).
			if seen[e.Name] > 0 {
				t.Errorf("%s published %d events of %s, superseded by %s", e.Producer, seen[e.Name], e.Name, newest)
			} else {
				excused = append(excused, fmt.Sprintf("%s (superseded by %s)", e.Name, newest))
			}
			continue
		}
		if seen[e.Name] > 0 {
			continue
		}
		// Every path of the journey runs, so every running producer
		// publishes the latest version of each of its types.
		if running[e.Producer] {
			never = append(never, e.Name)
		} else {
			excused = append(excused, fmt.Sprintf("%s (producer %s does not run in this system)", e.Name, e.Producer))
		}
	}
	t.Logf("captured %d messages of %d types", len(msgs), len(seen))
	if len(excused) > 0 {
		t.Logf("types never observed, as expected:\n  %s", strings.Join(excused, "\n  "))
	}
	if len(never) > 0 {
		t.Errorf("types the journey should have produced but never did:\n  %s", strings.Join(never, "\n  "))
	}
	for typ := range seen {
		if _, err := contracts.Lookup(typ); err != nil {
			t.Errorf("captured a type the registry does not know: %s", typ)
		}
	}
}

// checkRoutesDocumented: every route the gateway serves is documented.
func checkRoutesDocumented(t *testing.T, api *openAPI) {
	for _, r := range gateway.Routes() {
		path := strings.NewReplacer("{id}", outbox.NewID(), "{product_id}", outbox.NewID()).Replace(r.Pattern)
		if op := api.find(r.Method, path); op == nil || op.pattern != r.Pattern {
			t.Errorf("the gateway serves %s %s but the document does not describe it", r.Method, r.Pattern)
		}
	}
}

// waitSettled waits until every service's outbox has drained, so every
// event the journey caused has reached the broker.
func waitSettled(t *testing.T, sys *system.System) {
	t.Helper()
	ctx := context.Background()
	for _, svc := range system.Services {
		pool, err := pgxpool.New(ctx, sys.Databases[svc])
		if err != nil {
			t.Fatal(err)
		}
		system.Eventually(t, 30*time.Second, svc+" outbox drained", func() (bool, string) {
			st, err := outbox.ReadStats(ctx, pool)
			return err == nil && st.Pending == 0, fmt.Sprintf("%+v %v", st, err)
		})
		pool.Close()
	}
}

// deadLetters lists a service's open dead letters.
func deadLetters(t *testing.T, sys *system.System, svc string) []outbox.DeadLetter {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, sys.Databases[svc])
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	letters, err := outbox.ListDeadLetters(ctx, pool, false)
	if err != nil {
		t.Fatal(err)
	}
	return letters
}

// journey plays every saga path in parallel, each as its own customer.
func journey(t *testing.T, sys *system.System, h *httpContract) {
	admin := sys.Admin()
	h.expect(t, admin, http.StatusNoContent, nil, "GET", "/healthz", nil)
	h.expect(t, admin, http.StatusNoContent, nil, "GET", "/readyz", nil)
	h.expect(t, sys.Client(), http.StatusNotModified, nil, "GET", "/api/openapi.json", nil,
		"If-None-Match", sys.Client().Do("GET", "/api/openapi.json", nil).Header.Get("ETag"))

	t.Run("delivered", func(t *testing.T) {
		t.Parallel()
		j := newJourney(t, sys, h, admin)
		cup := j.product("cup", 1999, 6)
		spoon := j.product("spoon", 500, 10)
		// Product changes: catalog.product_updated and catalog.price_changed.
		h.expect(t, admin, http.StatusOK, nil, "PATCH", "/api/v1/admin/products/"+cup,
			map[string]any{"name": "Espresso cup", "price": money(2099)})
		// A restock: inventory.stock_adjusted.
		h.expect(t, admin, http.StatusOK, nil, "POST", "/api/v1/admin/products/"+spoon+"/stock", map[string]int{"adjust": 5})
		h.expect(t, sys.Client(), http.StatusOK, nil, "GET", "/api/v1/products?q=cup&limit=5", nil)
		h.expect(t, sys.Client(), http.StatusOK, nil, "GET", "/api/v1/products/"+cup, nil)

		c, _ := j.customer("happy")
		h.expect(t, c, http.StatusOK, nil, "PUT", "/api/v1/me/address", address("GB"))
		h.expect(t, c, http.StatusOK, nil, "GET", "/api/v1/me/address", nil)
		// Waits for the cart to learn the new price (catalog.price_changed).
		system.Eventually(t, 20*time.Second, "cart sees the new price", func() (bool, string) {
			r := h.do(t, c, "PUT", "/api/v1/cart/items/"+cup, map[string]int{"quantity": 2})
			return r.Status == http.StatusOK && strings.Contains(string(r.Body), `"amount_minor":2099`), trim(r.Body)
		})
		j.addToCart(c, spoon, 1)
		h.expect(t, c, http.StatusOK, nil, "DELETE", "/api/v1/cart/items/"+spoon, nil)
		h.expect(t, c, http.StatusOK, nil, "GET", "/api/v1/cart", nil)
		// 6 - 2 leaves 4 cups: inventory.low_stock.
		id := j.checkout(c, "tok_ok", "GB")
		j.waitOrder(c, id, "delivered")
		// A delivered order no longer changes: a conditional read of it is 304.
		etag := h.expect(t, c, http.StatusOK, nil, "GET", "/api/v1/orders/"+id, nil).Header.Get("ETag")
		h.expect(t, c, http.StatusNotModified, nil, "GET", "/api/v1/orders/"+id, nil, "If-None-Match", etag)
		h.expect(t, c, http.StatusOK, nil, "GET", "/api/v1/orders?limit=10", nil)
		h.expect(t, c, http.StatusOK, nil, "GET", "/api/v1/orders/"+id+"/payment", nil)
		h.expect(t, c, http.StatusOK, nil, "GET", "/api/v1/orders/"+id+"/shipment", nil)
		h.expect(t, c, http.StatusOK, nil, "GET", "/api/v1/orders/"+id+"/invoice", nil)
		system.Eventually(t, sagaTimeout, "notifications", func() (bool, string) {
			r := h.do(t, c, "GET", "/api/v1/notifications?limit=50", nil)
			return r.Status == http.StatusOK && strings.Count(string(r.Body), `"event_type"`) >= 3, trim(r.Body)
		})
		// The order is final now: cancelling it is a conflict.
		h.expect(t, c, http.StatusConflict, nil, "POST", "/api/v1/orders/"+id+"/cancel", nil)

		// The read models built from events: profile, history, points, reports.
		system.Eventually(t, sagaTimeout, "customer profile", func() (bool, string) {
			r := h.do(t, c, "GET", "/api/v1/me", nil)
			return r.Status == http.StatusOK, trim(r.Body)
		})
		system.Eventually(t, sagaTimeout, "order history", func() (bool, string) {
			r := h.do(t, c, "GET", "/api/v1/me/history?limit=10", nil)
			return r.Status == http.StatusOK && strings.Contains(string(r.Body), id), trim(r.Body)
		})
		system.Eventually(t, sagaTimeout, "points for the order", func() (bool, string) {
			r := h.do(t, c, "GET", "/api/v1/me/points?limit=10", nil)
			return r.Status == http.StatusOK && strings.Contains(string(r.Body), id), trim(r.Body)
		})
		today := time.Now().UTC().Format(time.DateOnly)
		h.expect(t, admin, http.StatusOK, nil, "GET", "/api/v1/admin/reports/sales?to="+today, nil)
		h.expect(t, admin, http.StatusOK, nil, "GET", "/api/v1/admin/reports/funnel", nil)
	})

	t.Run("out of stock", func(t *testing.T) {
		t.Parallel()
		j := newJourney(t, sys, h, admin)
		c, id := j.placed("scarce", 500, 1, 2, "tok_ok", "GB")
		j.waitCancelled(c, id, "out_of_stock")
	})

	t.Run("payment declined", func(t *testing.T) {
		t.Parallel()
		j := newJourney(t, sys, h, admin)
		c, id := j.placed("declined", 700, 5, 3, "tok_decline", "GB")
		j.waitCancelled(c, id, "payment_declined")
		h.expect(t, c, http.StatusOK, nil, "GET", "/api/v1/orders/"+id+"/payment", nil)
	})

	t.Run("payment timeout", func(t *testing.T) {
		t.Parallel()
		j := newJourney(t, sys, h, admin)
		c, id := j.placed("timeout", 900, 4, 1, "tok_timeout", "GB")
		j.waitCancelled(c, id, "payment_timeout")
	})

	t.Run("undeliverable", func(t *testing.T) {
		t.Parallel()
		j := newJourney(t, sys, h, admin)
		c, id := j.placed("nowhere", 1250, 6, 2, "tok_ok", "ZZ")
		j.waitCancelled(c, id, "undeliverable")
		system.Eventually(t, sagaTimeout, "credit note", func() (bool, string) {
			r := h.do(t, c, "GET", "/api/v1/orders/"+id+"/invoice", nil)
			return r.Status == http.StatusOK && strings.Contains(string(r.Body), "credit_note_id"), trim(r.Body)
		})
		system.Eventually(t, sagaTimeout, "refund", func() (bool, string) {
			r := h.do(t, c, "GET", "/api/v1/orders/"+id+"/payment", nil)
			return r.Status == http.StatusOK && strings.Contains(string(r.Body), `"refunded"`), trim(r.Body)
		})
		h.expect(t, c, http.StatusOK, nil, "GET", "/api/v1/orders/"+id+"/shipment", nil)
	})

	t.Run("customer cancels a confirmed order", func(t *testing.T) {
		t.Parallel()
		j := newJourney(t, sys, h, admin)
		c, id := j.placed("regret", 4000, 2, 1, "tok_ok", "GB")
		j.waitOrder(c, id, "confirmed")
		h.expect(t, c, http.StatusAccepted, nil, "POST", "/api/v1/orders/"+id+"/cancel", nil)
		j.waitCancelled(c, id, "customer_request")
	})

	t.Run("customer cancels a pending order", func(t *testing.T) {
		t.Parallel()
		j := newJourney(t, sys, h, admin)
		c, id := j.placed("hasty", 300, 3, 1, "tok_timeout", "GB")
		j.waitOrder(c, id, "pending")
		// The payment timeout may win on a slow machine; either way the
		// order ends cancelled and the answer must be documented.
		if r := h.do(t, c, "POST", "/api/v1/orders/"+id+"/cancel", nil); r.Status != http.StatusAccepted && r.Status != http.StatusConflict {
			t.Fatalf("cancel = %d %s, want 202 (or 409 after the timeout)", r.Status, trim(r.Body))
		}
		j.waitOrder(c, id, "cancelled")
	})

	t.Run("account changes", func(t *testing.T) {
		t.Parallel()
		j := newJourney(t, sys, h, admin)
		_, id := j.customer("leaving")
		h.expect(t, admin, http.StatusOK, nil, "POST", "/api/v1/admin/users/"+id+"/deactivate", map[string]string{"reason": "asked to leave"})
		// Loyalty cannot grant this customer's bonus and rolls the enrolment back.
		c, _ := j.customerAt("unlucky", bonusFailDomain)
		h.expect(t, c, http.StatusOK, nil, "GET", "/api/v1/me/points", nil)
	})

	t.Run("problems", func(t *testing.T) { t.Parallel(); problems(t, sys, h, admin) })
}

// problems provokes the documented client errors of every route.
func problems(t *testing.T, sys *system.System, h *httpContract, admin *system.Client) {
	j := newJourney(t, sys, h, admin)
	p := j.product("strict", 100, 5)
	c, user := j.customer("strict")
	anon := sys.Client()
	missing := outbox.NewID()
	type call struct {
		client *system.Client
		method string
		path   string
		body   any
		want   int
		header []string
	}
	calls := []call{
		{anon, "POST", "/api/v1/auth/register", []byte(`{"email": `), 400, nil},
		{anon, "POST", "/api/v1/auth/register", map[string]string{"email": "not-an-address", "password": "x", "name": ""}, 422, nil},
		{anon, "POST", "/api/v1/auth/login", map[string]string{"email": "nobody@example.com", "password": "wrong password"}, 401, nil},
		{anon, "GET", "/api/v1/me/address", nil, 401, nil},
		{c, "PUT", "/api/v1/me/address", map[string]string{"name": "A"}, 422, nil},
		{c, "POST", "/api/v1/admin/users/" + user + "/deactivate", nil, 403, nil},
		{admin, "POST", "/api/v1/admin/users/" + missing + "/deactivate", nil, 404, nil},
		{anon, "GET", "/api/v1/products?limit=0", nil, 422, nil},
		{anon, "GET", "/api/v1/products/" + missing, nil, 404, nil},
		{admin, "POST", "/api/v1/admin/products", map[string]any{"sku": ""}, 422, nil},
		{c, "POST", "/api/v1/admin/products", map[string]any{"sku": "x"}, 403, nil},
		{admin, "PATCH", "/api/v1/admin/products/" + missing, map[string]any{"name": "Nothing"}, 404, nil},
		{admin, "PATCH", "/api/v1/admin/products/" + p, map[string]any{"price": map[string]any{"amount_minor": -1, "currency": "EUR"}}, 422, nil},
		{admin, "POST", "/api/v1/admin/products/" + p + "/stock", map[string]any{"adjust": "lots"}, 422, nil},
		{c, "POST", "/api/v1/admin/products/" + p + "/stock", map[string]any{"adjust": 1}, 403, nil},
		{admin, "GET", "/api/v1/admin/products/" + missing + "/stock", nil, 404, nil},
		{c, "GET", "/api/v1/admin/products/" + p + "/stock", nil, 403, nil},
		{anon, "GET", "/api/v1/cart", nil, 401, nil},
		{c, "PUT", "/api/v1/cart/items/" + p, []byte(`{"quantity": -3}`), 422, nil},
		{c, "PUT", "/api/v1/cart/items/" + p, []byte(`{"quantity": 1, "quantity": 2}`), 400, nil},
		{c, "PUT", "/api/v1/cart/items/" + p, []byte(`{"quantity": 1, "x": "` + strings.Repeat("a", 200<<10) + `"}`), 413, nil},
		{anon, "DELETE", "/api/v1/cart/items/" + p, nil, 401, nil},
		{c, "POST", "/api/v1/cart/checkout", map[string]any{"shipping_address": address("GB"), "payment": map[string]string{"token": "tok_ok"}}, 400, nil},
		{c, "POST", "/api/v1/cart/checkout", map[string]any{"payment": map[string]string{"token": "tok_ok"}}, 422, []string{"Idempotency-Key", outbox.NewID()}},
		{anon, "GET", "/api/v1/orders", nil, 401, nil},
		{c, "GET", "/api/v1/orders?limit=0", nil, 422, nil},
		{c, "GET", "/api/v1/orders/" + missing, nil, 404, nil},
		{c, "POST", "/api/v1/orders/" + missing + "/cancel", nil, 404, nil},
		{c, "GET", "/api/v1/orders/" + missing + "/payment", nil, 404, nil},
		{c, "GET", "/api/v1/orders/" + missing + "/shipment", nil, 404, nil},
		{c, "GET", "/api/v1/orders/" + missing + "/invoice", nil, 404, nil},
		{anon, "GET", "/api/v1/notifications", nil, 401, nil},
		{c, "GET", "/api/v1/notifications?limit=-1", nil, 422, nil},
		{anon, "GET", "/api/v1/me", nil, 401, nil},
		{anon, "GET", "/api/v1/me/history", nil, 401, nil},
		{c, "GET", "/api/v1/me/history?limit=0", nil, 422, nil},
		{anon, "GET", "/api/v1/me/points", nil, 401, nil},
		{c, "GET", "/api/v1/me/points?limit=0", nil, 422, nil},
		{c, "GET", "/api/v1/admin/reports/sales", nil, 403, nil},
		{admin, "GET", "/api/v1/admin/reports/sales?from=yesterday", nil, 422, nil},
		{c, "GET", "/api/v1/admin/reports/funnel", nil, 403, nil},
		{admin, "GET", "/api/v1/admin/reports/funnel?from=2026-02-30", nil, 422, nil},
	}
	for _, k := range calls {
		r := h.do(t, k.client, k.method, k.path, k.body, k.header...)
		if r.Status != k.want {
			t.Errorf("%s %s = %d %s, want %d", k.method, k.path, r.Status, trim(r.Body), k.want)
		}
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s %s: %d answered as %q, want application/problem+json", k.method, k.path, r.Status, r.Header.Get("Content-Type"))
		}
	}
}

// journeyRun holds one scenario's clients and helpers; every call goes
// through the HTTP contract.
type journeyRun struct {
	t     *testing.T
	sys   *system.System
	h     *httpContract
	admin *system.Client
}

func newJourney(t *testing.T, sys *system.System, h *httpContract, admin *system.Client) *journeyRun {
	return &journeyRun{t: t, sys: sys, h: h, admin: admin}
}

func money(minor int64) map[string]any {
	return map[string]any{"amount_minor": minor, "currency": "EUR"}
}

func address(country string) map[string]string {
	return map[string]string{"name": "Ada Lovelace", "line1": "1 Analytical Way", "city": "London", "postal_code": "N1 9GU", "country": country}
}

// product creates a product with stock and waits until inventory has it.
func (j *journeyRun) product(name string, price int64, stock int) string {
	j.t.Helper()
	var p struct {
		ID string `json:"id"`
	}
	sku := fmt.Sprintf("%s-%d", strings.ToUpper(name), time.Now().UnixNano()%1e9)
	j.h.expect(j.t, j.admin, http.StatusCreated, &p, "POST", "/api/v1/admin/products", map[string]any{
		"sku": sku, "name": "Product " + sku, "description": "A product for contract tests", "price": money(price), "initial_stock": stock,
	})
	system.Eventually(j.t, 20*time.Second, "stock of "+sku, func() (bool, string) {
		r := j.h.do(j.t, j.admin, "GET", "/api/v1/admin/products/"+p.ID+"/stock", nil)
		return r.Status == http.StatusOK, trim(r.Body)
	})
	return p.ID
}

// customer registers and logs in a new customer and returns the client and
// the user's id.
func (j *journeyRun) customer(name string) (*system.Client, string) {
	j.t.Helper()
	return j.customerAt(name, "example.com")
}

// customerAt is customer with an e-mail address at domain.
func (j *journeyRun) customerAt(name, domain string) (*system.Client, string) {
	j.t.Helper()
	c := j.sys.Client()
	email := fmt.Sprintf("%s.%d@%s", name, time.Now().UnixNano(), domain)
	var u struct {
		ID string `json:"id"`
	}
	j.h.expect(j.t, c, http.StatusCreated, &u, "POST", "/api/v1/auth/register",
		map[string]string{"email": email, "password": "correct horse battery", "name": name})
	j.h.expect(j.t, c, http.StatusConflict, nil, "POST", "/api/v1/auth/register",
		map[string]string{"email": email, "password": "correct horse battery", "name": name})
	var tok struct {
		Token string `json:"token"`
	}
	j.h.expect(j.t, c, http.StatusOK, &tok, "POST", "/api/v1/auth/login", map[string]string{"email": email, "password": "correct horse battery"})
	c.Token = tok.Token
	return c, u.ID
}

// addToCart sets a line, retrying while the cart does not know the product.
func (j *journeyRun) addToCart(c *system.Client, product string, qty int) {
	j.t.Helper()
	system.Eventually(j.t, 20*time.Second, "cart accepts "+product, func() (bool, string) {
		r := j.h.do(j.t, c, "PUT", "/api/v1/cart/items/"+product, map[string]int{"quantity": qty})
		return r.Status == http.StatusOK, trim(r.Body)
	})
}

// placed creates a product with stock, a customer who puts qty of it in
// the cart and checks out paying with token to country, and returns the
// customer and the order's ID.
func (j *journeyRun) placed(name string, price int64, stock, qty int, token, country string) (*system.Client, string) {
	j.t.Helper()
	p := j.product(name, price, stock)
	c, _ := j.customer(name)
	j.addToCart(c, p, qty)
	return c, j.checkout(c, token, country)
}

func (j *journeyRun) checkout(c *system.Client, token, country string) string {
	j.t.Helper()
	var out struct {
		OrderID string `json:"order_id"`
	}
	j.h.expect(j.t, c, http.StatusAccepted, &out, "POST", "/api/v1/cart/checkout",
		map[string]any{"shipping_address": address(country), "payment": map[string]string{"token": token}}, "Idempotency-Key", outbox.NewID())
	return out.OrderID
}

// waitOrder follows the order until it has status, as a client would:
// each read waits for a change (If-None-Match with the last ETag, Prefer:
// wait), so its answers, 200 at a change, 304 when none came within the
// wait, 404 before the order appears, are all checked against the
// document. A final other status fails at once.
func (j *journeyRun) waitOrder(c *system.Client, id, status string) map[string]any {
	j.t.Helper()
	var o map[string]any
	etag := ""
	system.Eventually(j.t, sagaTimeout, "order "+id+" "+status, func() (bool, string) {
		headers := []string{"Prefer", "wait=5"}
		if etag != "" {
			headers = append(headers, "If-None-Match", etag)
		}
		r := j.h.do(j.t, c, "GET", "/api/v1/orders/"+id, nil, headers...)
		if got := r.Header.Get("Preference-Applied"); got != "wait=5" {
			j.t.Errorf("GET order %s with Prefer: wait=5 answered %d with Preference-Applied %q", id, r.Status, got)
		}
		if r.Status != http.StatusOK {
			return false, fmt.Sprintf("%d %s", r.Status, trim(r.Body))
		}
		if etag = r.Header.Get("ETag"); etag == "" {
			j.t.Errorf("GET order %s answered 200 without an ETag", id)
		}
		o = nil
		r.JSON(j.t, &o)
		if o["status"] != status && slices.Contains([]any{"cancelled", "delivered"}, o["status"]) {
			j.t.Fatalf("order %s ended %v, want %s: %s", id, o["status"], status, trim(r.Body))
		}
		return o["status"] == status, trim(r.Body)
	})
	return o
}

func (j *journeyRun) waitCancelled(c *system.Client, id, reason string) {
	j.t.Helper()
	if o := j.waitOrder(c, id, "cancelled"); o["cancellation_reason"] != reason {
		j.t.Errorf("order %s cancelled for %v, want %s", id, o["cancellation_reason"], reason)
	}
}
