package contract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
)

// story orders the event families as one order's life unfolds, so that a
// consumer fed the golden examples in this order meets every event after
// the ones it presupposes (the product before the reservation, the order
// before its replies). Families not listed here come last.
var story = []string{
	"user.registered", "user.address_changed",
	"catalog.product_created", "catalog.product_updated", "catalog.price_changed",
	"inventory.stock_adjusted", "inventory.stock_level_changed", "inventory.low_stock",
	"cart.line_updated", "cart.line_removed", "cart.checked_out",
	"order.placed", "inventory.stock_reserved", "order.payment_requested", "payment.authorized",
	"order.confirmed", "inventory.stock_committed", "invoice.invoice_issued",
	"shipping.shipment_created", "shipping.shipment_dispatched", "order.shipped",
	"shipping.shipment_delivered", "order.delivered", "order.completed",
	"loyalty.enrolled", "loyalty.points_awarded", "notification.sent",
	// Late and failure replies about the same order.
	"order.payment_timed_out", "inventory.stock_reservation_failed", "payment.declined",
	"order.cancellation_requested", "shipping.shipment_cancelled", "shipping.shipment_failed",
	"order.refund_requested", "payment.refunded", "invoice.credit_note_issued", "order.cancelled",
	"inventory.stock_released", "inventory.stock_returned",
	"loyalty.enrolment_bonus_failed", "loyalty.enrolment_rolled_back",
	"user.deactivated",
}

// family is a type's name without its version.
func family(typ string) string {
	i := strings.LastIndex(typ, ".v")
	return typ[:i]
}

// versionOf is a type's version number.
func versionOf(typ string) int {
	n, _ := strconv.Atoi(typ[strings.LastIndex(typ, ".v")+2:])
	return n
}

// storyRank is a family's place in the story.
func storyRank(fam string) int {
	if i := slices.Index(story, fam); i >= 0 {
		return i
	}
	return len(story)
}

// step is one fixture message: a type and its payload.
type step struct {
	typ     string
	payload []byte
}

// fixtures returns, for a consumer, the sequences of golden examples to feed
// it: one sequence with the latest version of every family it consumes, in
// story order, and for every older version one sequence of the families
// before it (at their latest version) ending with that older version. Every
// sequence is a world of its own: fresh ids and unique values throughout.
func fixtures(consumer string) [][]step {
	latest := map[string]contracts.EventType{}
	var older []contracts.EventType
	for _, e := range contracts.Registry() {
		if !slices.Contains(e.Consumers, consumer) {
			continue
		}
		fam := family(e.Name)
		if cur, ok := latest[fam]; !ok || e.Version > cur.Version {
			if ok {
				older = append(older, cur)
			}
			latest[fam] = e
		} else {
			older = append(older, e)
		}
	}
	families := slices.Collect(maps.Keys(latest))
	slices.SortFunc(families, func(a, b string) int {
		if ra, rb := storyRank(a), storyRank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	build := func(last *contracts.EventType) []step {
		w := newWorld()
		var seq []step
		for _, f := range families {
			e := latest[f]
			if last != nil && f == family(last.Name) {
				return append(seq, step{last.Name, w.rewrite(last.Example)})
			}
			for _, example := range examplesOf(e) {
				seq = append(seq, step{e.Name, w.rewrite(example)})
			}
		}
		return seq
	}
	out := [][]step{build(nil)}
	slices.SortFunc(older, func(a, b contracts.EventType) int { return strings.Compare(a.Name, b.Name) })
	for _, e := range older {
		out = append(out, build(&e))
	}
	return out
}

// examplesOf returns the golden example of e, except that a product's
// creation is repeated for every product the examples mention (with its
// own SKU), so a consumer that keeps stock or prices knows each product
// the order lines refer to.
func examplesOf(e contracts.EventType) [][]byte {
	if family(e.Name) != "catalog.product_created" {
		return [][]byte{e.Example}
	}
	var products []string
	for _, other := range contracts.Registry() {
		for _, m := range productIDPattern.FindAllSubmatch(other.Example, -1) {
			if id := string(m[1]); !slices.Contains(products, id) {
				products = append(products, id)
			}
		}
	}
	var out [][]byte
	for i, id := range products {
		var v map[string]any
		if err := json.Unmarshal(e.Example, &v); err != nil {
			panic(fmt.Sprintf("golden example of %s: %v", e.Name, err))
		}
		v["product_id"] = id
		if i > 0 {
			v["sku"] = fmt.Sprintf("%v-%d", v["sku"], i)
		}
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}

var productIDPattern = regexp.MustCompile(`"product_id":\s*"([0-9a-f-]{36})"`)

// world rewrites golden examples consistently: each id of the examples
// becomes one fresh id, and values that must be unique (e-mail addresses,
// SKUs, idempotency keys) get the world's tag, so worlds never collide in a
// consumer's database while the examples keep referring to each other.
type world struct {
	ids map[string]string
	tag string
}

var worlds atomic.Int64

func newWorld() *world {
	return &world{ids: map[string]string{}, tag: fmt.Sprintf("w%d%s", worlds.Add(1), outbox.NewID()[24:])}
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func (w *world) rewrite(example []byte) []byte {
	d := json.NewDecoder(bytes.NewReader(example))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		panic(fmt.Sprintf("golden example: %v", err)) // the contracts tests keep examples valid JSON
	}
	out, err := json.Marshal(w.value("", v))
	if err != nil {
		panic(err)
	}
	return out
}

func (w *world) value(key string, v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = w.value(k, x)
		}
		return v
	case []any:
		for i, x := range v {
			v[i] = w.value(key, x)
		}
		return v
	case string:
		switch {
		case uuidPattern.MatchString(v):
			if _, ok := w.ids[v]; !ok {
				w.ids[v] = outbox.NewID()
			}
			return w.ids[v]
		case key == "email" || strings.HasSuffix(key, "_email"):
			local, domain, _ := strings.Cut(v, "@")
			return local + "+" + w.tag + "@" + domain
		case key == "sku" || key == "idempotency_key":
			return v + "-" + strings.ToUpper(w.tag)
		}
	}
	return v
}

// aggregateOf is the ordering key a producer would give the event.
func aggregateOf(payload []byte) string {
	var ids map[string]any
	_ = json.Unmarshal(payload, &ids)
	for _, k := range []string{"order_id", "product_id", "user_id", "notification_id"} {
		if s, ok := ids[k].(string); ok && s != "" {
			return s
		}
	}
	return outbox.NewID()
}

func TestFixturesAreValidAndConsistent(t *testing.T) {
	t.Parallel()
	for _, c := range consumerServices() {
		for _, seq := range fixtures(c) {
			for _, s := range seq {
				if err := contracts.Validate(s.typ, s.payload); err != nil {
					t.Errorf("%s fixture of %s: %v", c, s.typ, err)
				}
			}
		}
	}
	w := newWorld()
	a := w.rewrite([]byte(`{"order_id": "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90", "email": "ada@example.com", "sku": "CUP"}`))
	b := w.rewrite([]byte(`{"lines": [{"order_id": "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90"}]}`))
	var x struct {
		OrderID string `json:"order_id"`
		Email   string `json:"email"`
		SKU     string `json:"sku"`
	}
	var y struct {
		Lines []struct {
			OrderID string `json:"order_id"`
		} `json:"lines"`
	}
	_ = json.Unmarshal(a, &x)
	_ = json.Unmarshal(b, &y)
	if x.OrderID == "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90" || len(y.Lines) != 1 || y.Lines[0].OrderID != x.OrderID {
		t.Errorf("ids are not rewritten consistently: %s, %s", a, b)
	}
	if !strings.HasSuffix(x.Email, "@example.com") || x.Email == "ada@example.com" || x.SKU == "CUP" {
		t.Errorf("unique values are not made unique: %s", a)
	}
}

// consumerServices are the services the registry lists as consumers.
func consumerServices() []string {
	var out []string
	for _, e := range contracts.Registry() {
		for _, c := range e.Consumers {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	slices.Sort(out)
	return out
}
