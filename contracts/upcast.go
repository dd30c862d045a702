package contracts

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// upcaster lifts a payload of one version to the next version of the same
// event type.
type upcaster struct {
	from, to string
	fn       func(payload []byte) ([]byte, error)
}

// upcasters lists every step of every upcast chain. A step is a pure
// function of the old payload: where the new version needs data the old one
// lacks, the step fills a documented default.
func upcasters() []upcaster {
	return []upcaster{
		{TypeOrderPlacedV1, TypeOrderPlacedV2, orderPlacedV1ToV2},
	}
}

// orderPlacedV1ToV2 lifts order.placed.v1 to v2. The order's currency is
// v1's total's; each line total is its unit price times its quantity; the
// subtotal is their sum; v1 knew no shipping charge, so shipping is what
// v1's total holds beyond the subtotal, which is zero for every order
// shopmesh placed. A v1 event whose amounts mix currencies, whose total is
// below the sum of its lines or whose line totals overflow has no v2 form.
func orderPlacedV1ToV2(payload []byte) ([]byte, error) {
	var v1 OrderPlacedV1
	if err := json.Unmarshal(payload, &v1); err != nil {
		return nil, err
	}
	currency := v1.Total.Currency
	v2 := OrderPlacedV2{
		OrderID: v1.OrderID, UserID: v1.UserID, Currency: currency,
		Lines: make([]PricedLine, 0, len(v1.Lines)), ShippingAddress: v1.ShippingAddress,
	}
	var subtotal int64
	for i, l := range v1.Lines {
		if l.UnitPrice.Currency != currency {
			return nil, fmt.Errorf("line %d is in %s, the order in %s", i, l.UnitPrice.Currency, currency)
		}
		lineTotal, ok := mulMinor(l.UnitPrice.AmountMinor, int64(l.Quantity))
		if ok {
			subtotal, ok = addMinor(subtotal, lineTotal)
		}
		if !ok {
			return nil, errMoneyOverflow
		}
		v2.Lines = append(v2.Lines, PricedLine{ProductID: l.ProductID, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity,
			UnitPrice: l.UnitPrice, LineTotal: Money{AmountMinor: lineTotal, Currency: currency}})
	}
	if v1.Total.AmountMinor < subtotal {
		return nil, fmt.Errorf("total %d is below the sum of the lines %d", v1.Total.AmountMinor, subtotal)
	}
	v2.Totals = OrderTotals{
		Subtotal: Money{AmountMinor: subtotal, Currency: currency},
		Shipping: Money{AmountMinor: v1.Total.AmountMinor - subtotal, Currency: currency},
		Total:    v1.Total,
	}
	return json.Marshal(v2)
}

// maxMinor is the largest amount a contract allows: the largest integer a
// JSON number holds exactly in every consumer's language.
const maxMinor = 1<<53 - 1

var errMoneyOverflow = errors.New("amounts exceed the largest amount a contract allows")

// mulMinor multiplies two non-negative amounts, reporting whether the
// product stays within maxMinor.
func mulMinor(a, b int64) (int64, bool) {
	if a < 0 || b < 0 || (b != 0 && a > math.MaxInt64/b) || a*b > maxMinor {
		return 0, false
	}
	return a * b, true
}

// addMinor adds two non-negative amounts, reporting whether the sum stays
// within maxMinor.
func addMinor(a, b int64) (int64, bool) {
	if a < 0 || b < 0 || a > maxMinor-b {
		return 0, false
	}
	return a + b, true
}

// Upcast returns payload as the latest version of eventType's event, with
// that version's name. The payload is validated against its own version
// first, and every step's result against the version it produces, so the
// result can be decoded into the latest Go type. A payload already at the
// latest version is returned unchanged.
//
// A consumer upcasts each message and handles only the latest version of
// every type it reads, however old the retained event it is given.
func Upcast(eventType string, payload []byte) (latestType string, latestPayload []byte, err error) {
	return defaultRegistry().upcast(eventType, payload)
}

func (r *registry) upcast(eventType string, payload []byte) (string, []byte, error) {
	e, err := r.lookup(eventType)
	if err != nil {
		return "", nil, err
	}
	if err := e.validate(payload); err != nil {
		return "", nil, err
	}
	for {
		u, ok := r.upcasters[eventType]
		if !ok {
			return eventType, payload, nil
		}
		next, err := u.fn(payload)
		if err != nil {
			return "", nil, fmt.Errorf("upcast %s to %s: %w", u.from, u.to, err)
		}
		if err := r.types[u.to].validate(next); err != nil {
			return "", nil, fmt.Errorf("upcast %s to %s: %w", u.from, u.to, err)
		}
		eventType, payload = u.to, next
	}
}

func (r *registry) addUpcaster(u upcaster) error {
	from, ok := r.types[u.from]
	if !ok {
		return fmt.Errorf("upcaster from %s: unknown type", u.from)
	}
	to, ok := r.types[u.to]
	if !ok {
		return fmt.Errorf("upcaster to %s: unknown type", u.to)
	}
	if family(u.from) != family(u.to) || to.Version != from.Version+1 {
		return fmt.Errorf("upcaster %s to %s: must lift one version of one event", u.from, u.to)
	}
	if _, dup := r.upcasters[u.from]; dup {
		return fmt.Errorf("upcaster from %s: listed twice", u.from)
	}
	r.upcasters[u.from] = u
	return nil
}

// DecodeLatest upcasts a payload of any version to the latest version of its
// type and decodes it into a new value of that version's Go type. The
// payload is validated once, by the upcast: consumers that hand every type
// they read to one handler (analytics, notification) use it instead of
// Upcast followed by Decode, which would validate the latest payload twice.
func DecodeLatest(eventType string, payload []byte) (latestType string, v any, err error) {
	r := defaultRegistry()
	latestType, latest, err := r.upcast(eventType, payload)
	if err != nil {
		return "", nil, err
	}
	e, err := r.lookup(latestType)
	if err != nil {
		return "", nil, err
	}
	v = e.New()
	if err := json.Unmarshal(latest, v); err != nil {
		return "", nil, fmt.Errorf("decode %s: %w", latestType, err)
	}
	return latestType, v, nil
}
