package catalog_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/tests/servicetest"
)

type money struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

type product struct {
	ID          string `json:"id"`
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Price       money  `json:"price"`
	Available   bool   `json:"available"`
}

type page struct {
	Items      []product `json:"items"`
	Limit      int       `json:"limit"`
	Offset     int       `json:"offset"`
	Total      int       `json:"total"`
	NextOffset *int      `json:"next_offset"`
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
	return v
}

func (h *harness) create(sku, name, description string, price int64, stock int) product {
	h.t.Helper()
	body := fmt.Sprintf(`{"sku": %q, "name": %q, "description": %q, "price": {"amount_minor": %d, "currency": "EUR"}, "initial_stock": %d}`,
		sku, name, description, price, stock)
	r := h.Do(http.MethodPost, "/api/v1/admin/products", admin, []byte(body))
	if r.Status != http.StatusCreated {
		h.t.Fatalf("create %s: %d %s", sku, r.Status, r.Body)
	}
	return decode[product](h.t, r)
}

func (h *harness) get(id string) product {
	h.t.Helper()
	r := h.Do(http.MethodGet, "/api/v1/products/"+id, anonymous, nil)
	if r.Status != http.StatusOK {
		h.t.Fatalf("get %s: %d %s", id, r.Status, r.Body)
	}
	return decode[product](h.t, r)
}

func TestAdministratorsCreateAndChangeProducts(t *testing.T) {
	t.Parallel()
	h := start(t, nil)

	r := h.Do(http.MethodPost, "/api/v1/admin/products", admin,
		[]byte(`{"sku": "CUP-ESP-01", "name": "Espresso cup", "description": "Porcelain, 80 ml.", "price": {"amount_minor": 1250}, "initial_stock": 40}`))
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	p := decode[product](t, r)
	if got, want := r.Header.Get("Location"), "/api/v1/products/"+p.ID; got != want {
		t.Errorf("location %q, want %q", got, want)
	}
	want := product{ID: p.ID, SKU: "CUP-ESP-01", Name: "Espresso cup", Description: "Porcelain, 80 ml.", Price: money{1250, "EUR"}, Available: true}
	if p != want {
		t.Errorf("created %+v, want %+v", p, want)
	}
	if got := h.get(p.ID); got != want {
		t.Errorf("public read %+v, want %+v", got, want)
	}
	var created contracts.ProductCreatedV1
	ev := h.WaitEvent(contracts.TypeProductCreatedV1, &created, servicetest.PayloadHas("product_id", p.ID))
	if created.SKU != "CUP-ESP-01" || created.InitialStock != 40 || created.Price != (contracts.Money{AmountMinor: 1250, Currency: "EUR"}) || ev.AggregateID != p.ID {
		t.Errorf("product created %+v (aggregate %s)", created, ev.AggregateID)
	}

	t.Log("a second product with the same sku is a conflict")
	before := h.OutboxCount("")
	r = h.Do(http.MethodPost, "/api/v1/admin/products", admin, []byte(`{"sku": "CUP-ESP-01", "name": "Other", "price": {"amount_minor": 1}}`))
	if r.Status != http.StatusConflict {
		t.Fatalf("duplicate sku: %d %s", r.Status, r.Body)
	}
	if got := h.Query(`SELECT count(*) FROM products`); got != 1 {
		t.Errorf("%d products stored", got)
	}

	t.Log("a price change publishes the previous and the new price")
	r = h.Do(http.MethodPatch, "/api/v1/admin/products/"+p.ID, admin, []byte(`{"price": {"amount_minor": 1190}}`))
	if r.Status != http.StatusOK {
		t.Fatalf("reprice: %d %s", r.Status, r.Body)
	}
	if got := decode[product](t, r); got.Price != (money{1190, "EUR"}) || got.Name != "Espresso cup" {
		t.Errorf("repriced %+v", got)
	}
	var changed contracts.PriceChangedV1
	h.WaitEvent(contracts.TypePriceChangedV1, &changed, servicetest.PayloadHas("product_id", p.ID))
	if changed.PreviousPrice.AmountMinor != 1250 || changed.Price.AmountMinor != 1190 || changed.SKU != "CUP-ESP-01" {
		t.Errorf("price changed %+v", changed)
	}
	if got := h.OutboxCount(contracts.TypeProductUpdatedV1); got != 0 {
		t.Errorf("a price change also published %d product updates", got)
	}

	t.Log("a description change publishes the descriptive fields")
	r = h.Do(http.MethodPatch, "/api/v1/admin/products/"+p.ID, admin, []byte(`{"name": "Espresso cup, white", "description": ""}`))
	if r.Status != http.StatusOK {
		t.Fatalf("rename: %d %s", r.Status, r.Body)
	}
	var updated contracts.ProductUpdatedV1
	h.WaitEvent(contracts.TypeProductUpdatedV1, &updated, servicetest.PayloadHas("product_id", p.ID))
	if updated.Name != "Espresso cup, white" || updated.Description != "" || updated.SKU != "CUP-ESP-01" {
		t.Errorf("product updated %+v", updated)
	}
	got := h.get(p.ID)
	if got.Name != "Espresso cup, white" || got.Description != "" || got.Price.AmountMinor != 1190 {
		t.Errorf("after updates %+v", got)
	}

	t.Log("a patch that changes nothing publishes nothing")
	mid := h.OutboxCount("")
	r = h.Do(http.MethodPatch, "/api/v1/admin/products/"+p.ID, admin, []byte(`{"name": "Espresso cup, white", "price": {"amount_minor": 1190, "currency": "EUR"}}`))
	if r.Status != http.StatusOK {
		t.Fatalf("no-op patch: %d %s", r.Status, r.Body)
	}
	if got := h.OutboxCount(""); got != mid {
		t.Errorf("a no-op patch published %d events", got-mid)
	}
	if got := h.OutboxCount(""); got != before+2 {
		t.Errorf("%d events after the first, want 2", got-before)
	}
}

func TestBrowseSearchAndPage(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	h.create("CUP-ESP-01", "Espresso cup", "Porcelain, 80 ml.", 1250, 10)
	h.create("GRD-HND-02", "Hand grinder", "Ceramic burrs.", 4990, 0)
	h.create("KTL-GOOSE", "Gooseneck kettle", "For pour-over; 100% steel.", 3900, 3)
	h.create("CUP-LAT-02", "Latte cup", "Porcelain, 300 ml.", 1450, 2)

	list := func(query string) page {
		t.Helper()
		r := h.Do(http.MethodGet, "/api/v1/products"+query, anonymous, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("list %s: %d %s", query, r.Status, r.Body)
		}
		return decode[page](t, r)
	}
	names := func(p page) []string {
		var out []string
		for _, it := range p.Items {
			out = append(out, it.Name)
		}
		return out
	}

	all := list("")
	if got, want := names(all), []string{"Espresso cup", "Gooseneck kettle", "Hand grinder", "Latte cup"}; !slices.Equal(got, want) {
		t.Errorf("all %v, want %v", got, want)
	}
	if all.Total != 4 || all.Limit != 20 || all.Offset != 0 || all.NextOffset != nil {
		t.Errorf("paging %+v", all)
	}
	if all.Items[2].Available || !all.Items[0].Available {
		t.Errorf("availability %+v", all.Items)
	}

	for _, tt := range []struct {
		q    string
		want []string
	}{
		{"cup", []string{"Espresso cup", "Latte cup"}},       // name
		{"grd-hnd", []string{"Hand grinder"}},                // sku, any case
		{"PORCELAIN", []string{"Espresso cup", "Latte cup"}}, // description
		{"100%", []string{"Gooseneck kettle"}},               // % is literal
		{"_", nil},                                           // _ is literal
		{"nothing like it", nil},
	} {
		p := list("?q=" + url.QueryEscape(tt.q))
		if got := names(p); !slices.Equal(got, tt.want) {
			t.Errorf("q=%q: %v, want %v", tt.q, got, tt.want)
		}
		if p.Total != len(tt.want) {
			t.Errorf("q=%q: total %d, want %d", tt.q, p.Total, len(tt.want))
		}
	}

	first := list("?limit=3")
	if got := names(first); len(got) != 3 || first.NextOffset == nil || *first.NextOffset != 3 || first.Total != 4 {
		t.Fatalf("first page %v next %v total %d", got, first.NextOffset, first.Total)
	}
	second := list(fmt.Sprintf("?limit=3&offset=%d", *first.NextOffset))
	if got := names(second); !slices.Equal(got, []string{"Latte cup"}) || second.NextOffset != nil {
		t.Errorf("second page %v next %v", got, second.NextOffset)
	}
	beyond := list("?offset=10")
	if len(beyond.Items) != 0 || beyond.Total != 4 || beyond.Items == nil {
		t.Errorf("past the end %+v", beyond)
	}

	for _, bad := range []string{"?limit=0", "?limit=101", "?limit=abc", "?limit=-1", "?offset=-1", "?offset=1e3",
		"?offset=100001", "?q=" + strings.Repeat("x", 201), "?limit=99999999999999999999"} {
		r := h.Do(http.MethodGet, "/api/v1/products"+bad, anonymous, nil)
		if r.Status != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d %s", bad, r.Status, r.Body)
			continue
		}
		if p := r.Problem(t); len(p.Errors) == 0 {
			t.Errorf("%s: no field errors in %+v", bad, p)
		}
	}
	for _, bad := range []string{"/api/v1/products/" + outbox.NewID(), "/api/v1/products/42", "/api/v1/products/" + strings.Repeat("a", 36)} {
		if r := h.Do(http.MethodGet, bad, anonymous, nil); r.Status != http.StatusNotFound {
			t.Errorf("%s: %d %s", bad, r.Status, r.Body)
		} else {
			r.Problem(t)
		}
	}
}

func TestAdminRoutesRejectBadInputAndChangeNothing(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	p := h.create("CUP-ESP-01", "Espresso cup", "Porcelain.", 1250, 10)
	eventsBefore := h.OutboxCount("")
	const create, good = "/api/v1/admin/products", `{"sku": "NEW-1", "name": "New", "price": {"amount_minor": 100}}`
	patch := "/api/v1/admin/products/" + p.ID
	huge := `{"sku": "BIG", "name": "Big", "description": "` + strings.Repeat("x", 1<<20) + `", "price": {"amount_minor": 100}}`

	tests := []struct {
		name        string
		method      string
		path        string
		who         caller
		body        string
		contentType string
		status      int
		field       string // a field the problem must name
	}{
		{"create without identity", http.MethodPost, create, anonymous, good, "", http.StatusUnauthorized, ""},
		{"create as customer", http.MethodPost, create, customer, good, "", http.StatusForbidden, ""},
		{"patch without identity", http.MethodPatch, patch, anonymous, `{"name": "X"}`, "", http.StatusUnauthorized, ""},
		{"patch as customer", http.MethodPatch, patch, customer, `{"name": "X"}`, "", http.StatusForbidden, ""},
		{"malformed JSON", http.MethodPost, create, admin, `{"sku": "A",`, "", http.StatusBadRequest, ""},
		{"malformed patch", http.MethodPatch, patch, admin, `{name: "X"}`, "", http.StatusBadRequest, ""},
		{"duplicate key", http.MethodPost, create, admin, `{"sku": "A", "sku": "B", "name": "N", "price": {"amount_minor": 1}}`, "", http.StatusBadRequest, ""},
		{"unknown field", http.MethodPost, create, admin, `{"sku": "A", "name": "N", "price": {"amount_minor": 1}, "colour": "red"}`, "", http.StatusUnprocessableEntity, "colour"},
		{"unknown price field", http.MethodPost, create, admin, `{"sku": "A", "name": "N", "price": {"amount_minor": 1, "tax": 2}}`, "", http.StatusUnprocessableEntity, "tax"},
		{"sku in patch", http.MethodPatch, patch, admin, `{"sku": "OTHER"}`, "", http.StatusUnprocessableEntity, "sku"},
		{"price as string", http.MethodPost, create, admin, `{"sku": "A", "name": "N", "price": {"amount_minor": "100"}}`, "", http.StatusUnprocessableEntity, "price.amount_minor"},
		{"price as number", http.MethodPost, create, admin, `{"sku": "A", "name": "N", "price": 100}`, "", http.StatusUnprocessableEntity, "price"},
		{"fractional price", http.MethodPost, create, admin, `{"sku": "A", "name": "N", "price": {"amount_minor": 1.5}}`, "", http.StatusUnprocessableEntity, "price.amount_minor"},
		{"stock as string", http.MethodPost, create, admin, `{"sku": "A", "name": "N", "price": {"amount_minor": 1}, "initial_stock": "5"}`, "", http.StatusUnprocessableEntity, "initial_stock"},
		{"missing everything", http.MethodPost, create, admin, `{}`, "", http.StatusUnprocessableEntity, "sku"},
		{"zero price", http.MethodPost, create, admin, `{"sku": "A", "name": "N", "price": {"amount_minor": 0}}`, "", http.StatusUnprocessableEntity, "price.amount_minor"},
		{"negative price", http.MethodPost, create, admin, `{"sku": "A", "name": "N", "price": {"amount_minor": -100}}`, "", http.StatusUnprocessableEntity, "price.amount_minor"},
		{"absurd price", http.MethodPost, create, admin, `{"sku": "A", "name": "N", "price": {"amount_minor": 100000000000}}`, "", http.StatusUnprocessableEntity, "price.amount_minor"},
		{"overflowing price", http.MethodPost, create, admin, `{"sku": "A", "name": "N", "price": {"amount_minor": 99999999999999999999}}`, "", http.StatusUnprocessableEntity, "price.amount_minor"},
		{"unknown currency", http.MethodPost, create, admin, `{"sku": "A", "name": "N", "price": {"amount_minor": 1, "currency": "EURO"}}`, "", http.StatusUnprocessableEntity, "price.currency"},
		{"negative stock", http.MethodPost, create, admin, `{"sku": "A", "name": "N", "price": {"amount_minor": 1}, "initial_stock": -1}`, "", http.StatusUnprocessableEntity, "initial_stock"},
		{"absurd stock", http.MethodPost, create, admin, `{"sku": "A", "name": "N", "price": {"amount_minor": 1}, "initial_stock": 1000001}`, "", http.StatusUnprocessableEntity, "initial_stock"},
		{"bad sku", http.MethodPost, create, admin, `{"sku": "a b", "name": "N", "price": {"amount_minor": 1}}`, "", http.StatusUnprocessableEntity, "sku"},
		{"long name", http.MethodPost, create, admin, `{"sku": "A", "name": "` + strings.Repeat("n", 201) + `", "price": {"amount_minor": 1}}`, "", http.StatusUnprocessableEntity, "name"},
		{"empty patch", http.MethodPatch, patch, admin, `{}`, "", http.StatusUnprocessableEntity, ""},
		{"empty name", http.MethodPatch, patch, admin, `{"name": ""}`, "", http.StatusUnprocessableEntity, "name"},
		{"patch price without amount", http.MethodPatch, patch, admin, `{"price": {"currency": "USD"}}`, "", http.StatusUnprocessableEntity, "price.amount_minor"},
		{"patch zero price", http.MethodPatch, patch, admin, `{"name": "Fine", "price": {"amount_minor": 0}}`, "", http.StatusUnprocessableEntity, "price.amount_minor"},
		{"oversized create", http.MethodPost, create, admin, huge, "", http.StatusRequestEntityTooLarge, ""},
		{"oversized patch", http.MethodPatch, patch, admin, `{"description": "` + strings.Repeat("x", 1<<20) + `"}`, "", http.StatusRequestEntityTooLarge, ""},
		{"wrong content type", http.MethodPost, create, admin, good, "text/xml", http.StatusUnsupportedMediaType, ""},
		{"patch unknown product", http.MethodPatch, "/api/v1/admin/products/" + outbox.NewID(), admin, `{"name": "X"}`, "", http.StatusNotFound, ""},
		{"patch malformed id", http.MethodPatch, "/api/v1/admin/products/xyz", admin, `{"name": "X"}`, "", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var headers []string
			if tt.contentType != "" {
				headers = []string{"Content-Type", tt.contentType}
			}
			r := h.For(t).Do(tt.method, tt.path, tt.who, []byte(tt.body), headers...)
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.status, r.Body)
			}
			prob := r.Problem(t)
			if prob.Status != tt.status {
				t.Errorf("problem status %d", prob.Status)
			}
			if tt.field != "" && !slices.ContainsFunc(prob.Errors, func(f httpkit.FieldError) bool { return f.Field == tt.field }) {
				t.Errorf("problem does not name %s: %+v", tt.field, prob.Errors)
			}
		})
	}
	if got := h.Query(`SELECT count(*) FROM products`); got != 1 {
		t.Errorf("%d products stored, want 1", got)
	}
	if got := h.get(p.ID); got != p {
		t.Errorf("product changed to %+v", got)
	}
	if got := h.OutboxCount(""); got != eventsBefore {
		t.Errorf("bad requests published %d events", got-eventsBefore)
	}
}

func TestAvailabilityFollowsInventory(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	p := h.create("CUP-ESP-01", "Espresso cup", "", 1250, 2)
	level := func(onHand, reserved int) contracts.StockLevelChangedV1 {
		return contracts.StockLevelChangedV1{ProductID: p.ID, SKU: p.SKU, OnHand: onHand, Reserved: reserved, Available: onHand - reserved}
	}
	t0 := time.Now()
	body := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	soldOut := outbox.NewID()
	h.PublishAt(soldOut, contracts.TypeStockLevelChangedV1, p.ID, t0, body(level(2, 2)))
	h.WaitApplied(soldOut)
	if h.get(p.ID).Available {
		t.Errorf("available with everything reserved")
	}

	t.Log("a report that happened earlier than the one applied is ignored")
	stale := outbox.NewID()
	h.PublishAt(stale, contracts.TypeStockLevelChangedV1, p.ID, t0.Add(-time.Second), body(level(2, 0)))
	h.WaitApplied(stale)
	if h.get(p.ID).Available {
		t.Errorf("a stale report made the product available")
	}

	t.Log("a later report applies, once however often it is delivered")
	restocked := outbox.NewID()
	h.PublishAt(restocked, contracts.TypeStockLevelChangedV1, p.ID, t0.Add(time.Second), body(level(7, 2)))
	h.PublishAt(restocked, contracts.TypeStockLevelChangedV1, p.ID, t0.Add(time.Second), body(level(7, 2)))
	h.Poll("the duplicate absorbed", func() (bool, string) { return h.Duplicates() >= 1, "" })
	if !h.get(p.ID).Available {
		t.Errorf("not available after a restock")
	}
	if got := h.Query(`SELECT stock_available FROM products WHERE id = $1`, p.ID); got != 5 {
		t.Errorf("stock %d, want 5", got)
	}

	t.Log("a report about an unknown product changes nothing, an invalid one is dead-lettered")
	unknown := outbox.NewID()
	other := outbox.NewID()
	h.Publish("", contracts.TypeStockLevelChangedV1, other, contracts.StockLevelChangedV1{ProductID: other, SKU: "X", OnHand: 1, Available: 1})
	bad := outbox.NewID()
	h.Publish(bad, contracts.TypeStockLevelChangedV1, p.ID, []byte(`{"product_id": "`+p.ID+`", "sku": "X", "on_hand": -1, "reserved": 0, "available": -1}`))
	h.Publish(unknown, contracts.TypeStockLevelChangedV1, p.ID, []byte(`{"product_id": "`+p.ID+`"}`))
	h.Poll("invalid reports dead-lettered", func() (bool, string) {
		n := h.Query(`SELECT count(*) FROM dead_letters WHERE message_id = ANY($1)`, []string{bad, unknown})
		return n == 2, fmt.Sprintf("%d dead letters", n)
	})
	if got := h.Query(`SELECT count(*) FROM products`); got != 1 {
		t.Errorf("%d products", got)
	}
	if !h.get(p.ID).Available {
		t.Errorf("an invalid report changed availability")
	}
}
