// Package domain holds the cart's rules: the local view of products and
// prices kept from the catalogue's events, a customer's cart with its price
// snapshots, and checkout with its idempotency. Values of its types cannot be
// built invalid. It knows nothing of storage, HTTP or messaging, and must not.
package domain

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopmesh/shopmesh/internal/ids"
)

// Limits of a cart.
const (
	MinQuantity = 1
	MaxQuantity = 99
	// MaxLines bounds the distinct products in one cart.
	MaxLines = 50
	// DefaultCurrency is the currency of an empty cart's total.
	DefaultCurrency = "EUR"
)

// Errors of the cart domain; compare with errors.Is.
var (
	ErrProductNotFound = errors.New("product not found")
	ErrLineNotFound    = errors.New("product not in the cart")
	ErrEmptyCart       = errors.New("the cart is empty")
	ErrCartFull        = fmt.Errorf("a cart holds at most %d products", MaxLines)
	// ErrCurrencyMismatch: a cart is priced in one currency.
	ErrCurrencyMismatch = errors.New("the cart holds products priced in another currency")
	// ErrKeyReused: an idempotency key was used before with another request.
	ErrKeyReused = errors.New("the idempotency key was used with a different request")
	// ErrInvalid is matched by every *ValidationError and by values that
	// break an invariant.
	ErrInvalid = errors.New("invalid")
)

// FieldError names one invalid field by its JSON path.
type FieldError struct {
	Field   string
	Message string
}

// ValidationError lists every invalid field of a request.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + " " + f.Message
	}
	return "invalid: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true for every validation error.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

type fields []FieldError

func (f *fields) add(field, format string, args ...any) {
	*f = append(*f, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (f fields) err() error {
	if len(f) == 0 {
		return nil
	}
	return &ValidationError{Fields: f}
}

// ParseID returns the canonical form of a UUID given in its 36-character
// form, or ErrInvalid.
func ParseID(s string) (string, error) {
	id, ok := ids.Canonical(s)
	if !ok {
		return "", fmt.Errorf("%w: %q is not a UUID", ErrInvalid, s)
	}
	return id, nil
}

// Money is an amount in minor units of a currency.
type Money struct {
	AmountMinor int64
	Currency    string
}

func validMoney(m Money) bool {
	return m.AmountMinor >= 0 && len(m.Currency) == 3 && strings.ToUpper(m.Currency) == m.Currency
}

// Product is the cart's view of a catalogue product: enough to snapshot a
// line. Its parts change independently (details and price come in separate
// events), so each remembers when its last change happened.
type Product struct {
	id, sku, name string
	price         Money
	detailsAsOf   time.Time
	priceAsOf     time.Time
}

// NewProduct returns the view of a product as the catalogue created it at asOf.
func NewProduct(id, sku, name string, price Money, asOf time.Time) (Product, error) {
	return ProductFromDatabase(id, sku, name, price, asOf, asOf)
}

// ProductFromDatabase rebuilds a stored product view.
func ProductFromDatabase(id, sku, name string, price Money, detailsAsOf, priceAsOf time.Time) (Product, error) {
	canonical, err := ParseID(id)
	if err != nil {
		return Product{}, err
	}
	if sku == "" || name == "" || !validMoney(price) {
		return Product{}, fmt.Errorf("%w: product %s needs a sku, a name and a price", ErrInvalid, id)
	}
	return Product{id: canonical, sku: sku, name: name, price: price, detailsAsOf: detailsAsOf, priceAsOf: priceAsOf}, nil
}

// ID is the product's id.
func (p Product) ID() string { return p.id }

// SKU is the product's stock keeping unit.
func (p Product) SKU() string { return p.sku }

// Name is the display name.
func (p Product) Name() string { return p.name }

// Price is the current unit price.
func (p Product) Price() Money { return p.price }

// DetailsAsOf is when the applied sku and name were set.
func (p Product) DetailsAsOf() time.Time { return p.detailsAsOf }

// PriceAsOf is when the applied price was set.
func (p Product) PriceAsOf() time.Time { return p.priceAsOf }

// Describe applies the catalogue's descriptive change made at asOf, unless
// a later one is already applied; it reports whether it applied.
func (p *Product) Describe(sku, name string, asOf time.Time) (bool, error) {
	if sku == "" || name == "" {
		return false, fmt.Errorf("%w: product %s needs a sku and a name", ErrInvalid, p.id)
	}
	if asOf.Before(p.detailsAsOf) {
		return false, nil
	}
	p.sku, p.name, p.detailsAsOf = sku, name, asOf
	return true, nil
}

// Reprice applies the catalogue's price change made at asOf, unless a later
// one is already applied; it reports whether it applied.
func (p *Product) Reprice(price Money, asOf time.Time) (bool, error) {
	if !validMoney(price) {
		return false, fmt.Errorf("%w: price %+v of product %s", ErrInvalid, price, p.id)
	}
	if asOf.Before(p.priceAsOf) {
		return false, nil
	}
	p.price, p.priceAsOf = price, asOf
	return true, nil
}

// Line is one product in a cart, with the price snapshot it is sold at.
type Line struct {
	ProductID string
	SKU       string
	Name      string
	Quantity  int
	UnitPrice Money
	AddedAt   time.Time
}

// Total is the line's quantity times its unit price.
func (l Line) Total() Money {
	return Money{AmountMinor: l.UnitPrice.AmountMinor * int64(l.Quantity), Currency: l.UnitPrice.Currency}
}

// Cart is one customer's cart: at most MaxLines products, each 1 to
// MaxQuantity times, in the order they were first added.
type Cart struct {
	userID string
	lines  []Line
}

// NewCart returns an empty cart of a user.
func NewCart(userID string) (Cart, error) {
	id, err := ParseID(userID)
	if err != nil {
		return Cart{}, err
	}
	return Cart{userID: id}, nil
}

// CartFromDatabase rebuilds a stored cart.
func CartFromDatabase(userID string, lines []Line) (Cart, error) {
	c, err := NewCart(userID)
	if err != nil {
		return Cart{}, err
	}
	if len(lines) > MaxLines {
		return Cart{}, fmt.Errorf("%w: stored cart of %s has %d lines", ErrInvalid, userID, len(lines))
	}
	for _, l := range lines {
		if l.Quantity < MinQuantity || l.Quantity > MaxQuantity || !validMoney(l.UnitPrice) {
			return Cart{}, fmt.Errorf("%w: stored line %+v", ErrInvalid, l)
		}
	}
	c.lines = slices.Clone(lines)
	slices.SortStableFunc(c.lines, func(a, b Line) int { return a.AddedAt.Compare(b.AddedAt) })
	return c, nil
}

// UserID is the cart's owner.
func (c Cart) UserID() string { return c.userID }

// Lines are the cart's lines in the order they were added.
func (c Cart) Lines() []Line { return slices.Clone(c.lines) }

// Empty reports whether the cart has no lines.
func (c Cart) Empty() bool { return len(c.lines) == 0 }

// Line returns the line of a product.
func (c Cart) Line(productID string) (Line, bool) {
	i := c.index(productID)
	if i < 0 {
		return Line{}, false
	}
	return c.lines[i], true
}

func (c Cart) index(productID string) int {
	return slices.IndexFunc(c.lines, func(l Line) bool { return l.ProductID == productID })
}

// Total sums the lines; an empty cart totals zero in DefaultCurrency.
// ErrCurrencyMismatch reports lines in different currencies (a product
// repriced into another currency after it was added).
func (c Cart) Total() (Money, error) {
	total := Money{Currency: DefaultCurrency}
	for i, l := range c.lines {
		if i == 0 {
			total.Currency = l.UnitPrice.Currency
		} else if l.UnitPrice.Currency != total.Currency {
			return Money{}, ErrCurrencyMismatch
		}
		total.AmountMinor += l.Total().AmountMinor
	}
	return total, nil
}

// Set puts quantity units of p in the cart at its current price (a new line,
// or a new quantity and price snapshot for an existing one) and returns the
// quantity before (0 for a new line).
func (c *Cart) Set(p Product, quantity int, now time.Time) (int, error) {
	if quantity < MinQuantity || quantity > MaxQuantity {
		return 0, &ValidationError{Fields: []FieldError{{Field: "quantity", Message: fmt.Sprintf("must be between %d and %d", MinQuantity, MaxQuantity)}}}
	}
	for _, l := range c.lines {
		if l.ProductID != p.id && l.UnitPrice.Currency != p.price.Currency {
			return 0, ErrCurrencyMismatch
		}
	}
	line := Line{ProductID: p.id, SKU: p.sku, Name: p.name, Quantity: quantity, UnitPrice: p.price, AddedAt: now}
	if i := c.index(p.id); i >= 0 {
		previous := c.lines[i].Quantity
		line.AddedAt = c.lines[i].AddedAt
		c.lines[i] = line
		return previous, nil
	}
	if len(c.lines) >= MaxLines {
		return 0, ErrCartFull
	}
	c.lines = append(c.lines, line)
	return 0, nil
}

// Remove takes a product out of the cart and returns its quantity before.
func (c *Cart) Remove(productID string) (int, error) {
	i := c.index(productID)
	if i < 0 {
		return 0, ErrLineNotFound
	}
	previous := c.lines[i].Quantity
	c.lines = slices.Delete(c.lines, i, i+1)
	return previous, nil
}
