// Package domain holds the catalogue's rules: what a valid product and price
// are, how a product changes, and how stock levels reported by inventory
// become availability. Values of its types cannot be built invalid. It knows
// nothing of storage, HTTP or messaging, and must not.
package domain

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/currency"

	"github.com/shopmesh/shopmesh/internal/ids"
)

// Limits of a product.
const (
	MaxSKULength         = 40
	MaxNameLength        = 200  // characters
	MaxDescriptionLength = 5000 // characters
	// MaxPriceMinor is the largest unit price, in minor units (EUR
	// 1,000,000.00): far beyond any product, far inside every integer type.
	MaxPriceMinor = 100_000_000
	// MaxInitialStock bounds the stock a product is created with.
	MaxInitialStock = 1_000_000
	// DefaultCurrency is used when a price names none.
	DefaultCurrency = "EUR"
)

// Errors of the catalogue domain; compare with errors.Is.
var (
	ErrNotFound = errors.New("product not found")
	// ErrSKUTaken: another product has the stock keeping unit.
	ErrSKUTaken = errors.New("a product with this sku exists")
	// ErrInvalid is matched by every *ValidationError.
	ErrInvalid = errors.New("invalid")
)

// FieldError names one invalid field by its JSON path ("price.amount_minor").
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

// fields collects field errors; err returns nil when there are none.
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
// form, or ErrNotFound: an id that is not a UUID names no product.
func ParseID(s string) (string, error) {
	id, ok := ids.Canonical(s)
	if !ok {
		return "", ErrNotFound
	}
	return id, nil
}

// Money is a positive amount in minor units of an ISO 4217 currency.
type Money struct {
	amountMinor int64
	currency    string
}

// NewMoney returns a unit price: 0 < amount <= MaxPriceMinor in a current
// ISO 4217 currency ("" means DefaultCurrency). field prefixes the names in
// a validation error.
func NewMoney(field string, amountMinor int64, cur string) (Money, error) {
	var errs fields
	m := checkMoney(&errs, field, amountMinor, cur)
	if err := errs.err(); err != nil {
		return Money{}, err
	}
	return m, nil
}

func checkMoney(errs *fields, field string, amountMinor int64, cur string) Money {
	if amountMinor <= 0 || amountMinor > MaxPriceMinor {
		errs.add(field+".amount_minor", "must be between 1 and %d minor units", MaxPriceMinor)
	}
	if cur == "" {
		cur = DefaultCurrency
	}
	if !validCurrency(cur) {
		errs.add(field+".currency", "must be an ISO 4217 currency code such as EUR")
	}
	return Money{amountMinor: amountMinor, currency: cur}
}

// validCurrency accepts upper-case ISO 4217 codes of real currencies; the X
// codes (precious metals, test and "no currency" codes) are not prices.
func validCurrency(code string) bool {
	if len(code) != 3 || strings.ToUpper(code) != code || code[0] == 'X' {
		return false
	}
	_, err := currency.ParseISO(code)
	return err == nil
}

// AmountMinor is the amount in minor units.
func (m Money) AmountMinor() int64 { return m.amountMinor }

// Currency is the ISO 4217 code.
func (m Money) Currency() string { return m.currency }

var skuPattern = regexp.MustCompile(`^[A-Z0-9]+(?:[-_][A-Z0-9]+)*$`)

func checkSKU(errs *fields, sku string) {
	if len(sku) > MaxSKULength || !skuPattern.MatchString(sku) {
		errs.add("sku", "must be 1 to %d upper-case letters or digits, in groups joined by - or _ (like CUP-ESP-01)", MaxSKULength)
	}
}

func checkName(errs *fields, name string) {
	n := utf8.RuneCountInString(name)
	switch {
	case !utf8.ValidString(name):
		errs.add("name", "must be valid UTF-8")
	case strings.TrimSpace(name) != name:
		errs.add("name", "must not start or end with spaces")
	case n == 0 || n > MaxNameLength:
		errs.add("name", "must have 1 to %d characters", MaxNameLength)
	case strings.ContainsFunc(name, unicode.IsControl):
		errs.add("name", "must not contain control characters")
	}
}

func checkDescription(errs *fields, d string) {
	switch {
	case !utf8.ValidString(d):
		errs.add("description", "must be valid UTF-8")
	case utf8.RuneCountInString(d) > MaxDescriptionLength:
		errs.add("description", "must have at most %d characters", MaxDescriptionLength)
	case strings.ContainsFunc(d, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }):
		errs.add("description", "must not contain control characters other than newlines and tabs")
	}
}

// Product is an item of the catalogue with its price and the availability
// inventory last reported.
type Product struct {
	id          string
	sku         string
	name        string
	description string
	price       Money
	stock       int       // available units, as inventory last reported them
	stockAsOf   time.Time // when inventory's report happened; zero before the first
}

// NewProduct returns a new product priced priceMinor in currency ("" means
// DefaultCurrency) with initial units of stock, or a *ValidationError naming
// every invalid field.
func NewProduct(id, sku, name, description string, priceMinor int64, currency string, initialStock int) (Product, error) {
	var errs fields
	checkSKU(&errs, sku)
	checkName(&errs, name)
	checkDescription(&errs, description)
	price := checkMoney(&errs, "price", priceMinor, currency)
	if initialStock < 0 || initialStock > MaxInitialStock {
		errs.add("initial_stock", "must be between 0 and %d", MaxInitialStock)
	}
	if err := errs.err(); err != nil {
		return Product{}, err
	}
	canonical, err := ParseID(id)
	if err != nil {
		return Product{}, fmt.Errorf("product id %q: %w", id, err)
	}
	return Product{id: canonical, sku: sku, name: name, description: description, price: price, stock: initialStock}, nil
}

// ProductFromDatabase rebuilds a stored product, checking its invariants.
func ProductFromDatabase(id, sku, name, description string, priceMinor int64, cur string, stock int, stockAsOf time.Time) (Product, error) {
	p, err := NewProduct(id, sku, name, description, priceMinor, cur, 0)
	if err != nil {
		return Product{}, fmt.Errorf("stored product %s: %w", id, err)
	}
	if stock < 0 {
		return Product{}, fmt.Errorf("stored product %s: negative stock %d", id, stock)
	}
	p.stock, p.stockAsOf = stock, stockAsOf
	return p, nil
}

// ID is the product's id.
func (p Product) ID() string { return p.id }

// SKU is the product's stock keeping unit, unique in the catalogue.
func (p Product) SKU() string { return p.sku }

// Name is the display name.
func (p Product) Name() string { return p.name }

// Description is the long description (may be empty).
func (p Product) Description() string { return p.description }

// Price is the unit price.
func (p Product) Price() Money { return p.price }

// Stock is the number of available units inventory last reported.
func (p Product) Stock() int { return p.stock }

// StockAsOf is when inventory's last applied report happened.
func (p Product) StockAsOf() time.Time { return p.stockAsOf }

// Available reports whether customers can order the product now.
func (p Product) Available() bool { return p.stock > 0 }

// Patch is an administrator's change; nil fields stay as they are.
type Patch struct {
	Name        *string
	Description *string
	// PriceMinor and Currency change the price; a currency without an
	// amount is not a change, an amount without a currency keeps the
	// product's currency.
	PriceMinor *int64
	Currency   *string
}

// Change says what an update changed.
type Change struct {
	Details       bool // name or description
	Price         bool
	PreviousPrice Money
}

// Update applies patch, all or nothing: a *ValidationError leaves the product
// as it was.
func (p *Product) Update(patch Patch) (Change, error) {
	var errs fields
	next := *p
	if patch.Name == nil && patch.Description == nil && patch.PriceMinor == nil && patch.Currency == nil {
		errs.add("(body)", "must change at least one of name, description and price")
	}
	if patch.Name != nil {
		checkName(&errs, *patch.Name)
		next.name = *patch.Name
	}
	if patch.Description != nil {
		checkDescription(&errs, *patch.Description)
		next.description = *patch.Description
	}
	if patch.Currency != nil && patch.PriceMinor == nil {
		errs.add("price.amount_minor", "is required")
	}
	if patch.PriceMinor != nil {
		cur := p.price.currency
		if patch.Currency != nil {
			cur = *patch.Currency
		}
		next.price = checkMoney(&errs, "price", *patch.PriceMinor, cur)
	}
	if err := errs.err(); err != nil {
		return Change{}, err
	}
	ch := Change{
		Details:       next.name != p.name || next.description != p.description,
		Price:         next.price != p.price,
		PreviousPrice: p.price,
	}
	*p = next
	return ch, nil
}

// ApplyStockLevel records the available units inventory reported at asOf.
// A report older than the one already applied is ignored (it reports false),
// so a redelivered or replayed report never turns availability back.
func (p *Product) ApplyStockLevel(available int, asOf time.Time) bool {
	if available < 0 {
		available = 0
	}
	if !asOf.IsZero() && asOf.Before(p.stockAsOf) {
		return false
	}
	p.stock = available
	if asOf.After(p.stockAsOf) {
		p.stockAsOf = asOf
	}
	return true
}
