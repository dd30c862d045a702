package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of a checkout request.
const (
	MaxKeyLength     = 255
	MaxTokenLength   = 255
	MaxAddressLength = 200 // characters per address line, name or city
	MaxPostalLength  = 20
)

// Address is a validated shipping address; Country is an ISO 3166-1 alpha-2
// code in upper case.
type Address struct {
	Name, Line1, Line2, City, PostalCode, Country string
}

var countryPattern = regexp.MustCompile(`^[A-Z]{2}$`)

// CheckoutRequest is what a customer checks out with: where to ship and the
// payment provider's token.
type CheckoutRequest struct {
	Address      Address
	PaymentToken string
}

// NewCheckoutRequest validates a checkout request and returns it normalised
// (surrounding spaces trimmed, the country in upper case), or a
// *ValidationError naming every invalid field.
func NewCheckoutRequest(a Address, paymentToken string) (CheckoutRequest, error) {
	var errs fields
	text := func(field string, v *string, required bool, maxLen int) {
		*v = strings.TrimSpace(*v)
		n := utf8.RuneCountInString(*v)
		switch {
		case !utf8.ValidString(*v):
			errs.add(field, "must be valid UTF-8")
		case required && n == 0:
			errs.add(field, "is required")
		case n > maxLen:
			errs.add(field, "must have at most %d characters", maxLen)
		case strings.ContainsFunc(*v, unicode.IsControl):
			errs.add(field, "must not contain control characters")
		}
	}
	text("shipping_address.name", &a.Name, true, MaxAddressLength)
	text("shipping_address.line1", &a.Line1, true, MaxAddressLength)
	text("shipping_address.line2", &a.Line2, false, MaxAddressLength)
	text("shipping_address.city", &a.City, true, MaxAddressLength)
	text("shipping_address.postal_code", &a.PostalCode, true, MaxPostalLength)
	a.Country = strings.ToUpper(strings.TrimSpace(a.Country))
	if !countryPattern.MatchString(a.Country) {
		errs.add("shipping_address.country", "must be a two-letter ISO 3166-1 country code")
	}
	if paymentToken == "" || len(paymentToken) > MaxTokenLength || !printableASCII(paymentToken) {
		errs.add("payment.token", "must be 1 to %d printable characters without spaces", MaxTokenLength)
	}
	if err := errs.err(); err != nil {
		return CheckoutRequest{}, err
	}
	return CheckoutRequest{Address: a, PaymentToken: paymentToken}, nil
}

// Hash identifies the request's content for idempotency: the SHA-256 of its
// normalised fields in a fixed order, each prefixed with its length so that
// no two requests share an encoding. The same request hashes the same however
// its JSON was spelled (key order, spacing, the country's case).
func (r CheckoutRequest) Hash() string {
	h := sha256.New()
	for _, f := range []string{"checkout/v1", r.Address.Name, r.Address.Line1, r.Address.Line2, r.Address.City,
		r.Address.PostalCode, r.Address.Country, r.PaymentToken} {
		fmt.Fprintf(h, "%d:%s;", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// ParseIdempotencyKey checks a client's Idempotency-Key: 1 to MaxKeyLength
// printable ASCII characters without spaces.
func ParseIdempotencyKey(key string) (string, error) {
	if key == "" || len(key) > MaxKeyLength || !printableASCII(key) {
		return "", &ValidationError{Fields: []FieldError{{Field: "Idempotency-Key",
			Message: fmt.Sprintf("header must be 1 to %d printable characters without spaces", MaxKeyLength)}}}
	}
	return key, nil
}

// Checkout is the record of one checkout: which request, under which key,
// became which order. It makes a retried checkout answer with the same order.
type Checkout struct {
	UserID      string
	Key         string
	RequestHash string
	OrderID     string
	Lines       []Line
	Total       Money
	CreatedAt   time.Time
}

// Replay answers a checkout repeated under the same key: the same request
// gets the recorded checkout back, another request is ErrKeyReused.
func (c Checkout) Replay(requestHash string) (Checkout, error) {
	if c.RequestHash != requestHash {
		return Checkout{}, ErrKeyReused
	}
	return c, nil
}

// Checkout empties the cart into an order: it records the request under key
// as order orderID with the cart's lines and total, and leaves the cart
// empty. An empty cart is ErrEmptyCart.
func (c *Cart) Checkout(key string, req CheckoutRequest, orderID string, now time.Time) (Checkout, error) {
	if c.Empty() {
		return Checkout{}, ErrEmptyCart
	}
	id, err := ParseID(orderID)
	if err != nil {
		return Checkout{}, err
	}
	total, err := c.Total()
	if err != nil {
		return Checkout{}, err
	}
	out := Checkout{UserID: c.userID, Key: key, RequestHash: req.Hash(), OrderID: id, Lines: c.Lines(), Total: total, CreatedAt: now}
	c.lines = nil
	return out, nil
}
