// Package domain holds inventory's rules: the stock levels of one product and
// the reservation of one order's lines, with their invariants. Values of its
// types cannot be built invalid. It knows nothing of storage, HTTP or
// messaging, and must not.
package domain

import (
	"errors"
	"fmt"
	"strings"

	"github.com/shopmesh/shopmesh/internal/ids"
)

// Limits of stock arithmetic. MaxOnHand keeps every level far inside the
// int32 range of the database columns and of the event contracts.
const (
	MaxOnHand = 1_000_000_000
	// MaxAdjust bounds one administrator adjustment in either direction.
	MaxAdjust = 1_000_000
	// MaxSKULength bounds the stock keeping unit copied from the catalogue.
	MaxSKULength = 64
)

// Errors of the inventory domain. Callers compare with errors.Is; messages
// wrapping them are safe to show to an administrator.
var (
	ErrNotFound = errors.New("not found")
	// ErrInsufficientStock: the change would take on-hand stock below what
	// is reserved or below zero.
	ErrInsufficientStock = errors.New("insufficient stock")
	// ErrInvalidAdjustment: an adjustment of zero or beyond MaxAdjust, or one
	// that would take stock on hand beyond MaxOnHand.
	ErrInvalidAdjustment = errors.New("invalid adjustment")
	// ErrInvalid: a value that breaks an invariant (a bad id, quantity or
	// level). In events it is a permanent fault of the message.
	ErrInvalid = errors.New("invalid")
)

// ParseID returns the canonical form of a UUID given in its 36-character
// form, or ErrInvalid.
func ParseID(s string) (string, error) {
	id, ok := ids.Canonical(s)
	if !ok {
		return "", fmt.Errorf("%w: id %q is not a UUID", ErrInvalid, s)
	}
	return id, nil
}

// Stock is the stock of one product. Invariants: 0 <= reserved <= onHand
// <= MaxOnHand; available = onHand - reserved.
type Stock struct {
	productID string
	sku       string
	onHand    int
	reserved  int
}

// NewStock returns the stock of a new product with initial units on hand.
func NewStock(productID, sku string, initial int) (Stock, error) {
	return StockFromDatabase(productID, sku, initial, 0)
}

// StockFromDatabase rebuilds stored stock, checking every invariant.
func StockFromDatabase(productID, sku string, onHand, reserved int) (Stock, error) {
	id, err := ParseID(productID)
	if err != nil {
		return Stock{}, err
	}
	sku = strings.TrimSpace(sku)
	switch {
	case sku == "" || len(sku) > MaxSKULength:
		return Stock{}, fmt.Errorf("%w: sku %q must have 1 to %d characters", ErrInvalid, sku, MaxSKULength)
	case onHand < 0 || onHand > MaxOnHand:
		return Stock{}, fmt.Errorf("%w: on hand %d outside 0..%d", ErrInvalid, onHand, MaxOnHand)
	case reserved < 0 || reserved > onHand:
		return Stock{}, fmt.Errorf("%w: reserved %d outside 0..%d (on hand)", ErrInvalid, reserved, onHand)
	}
	return Stock{productID: id, sku: sku, onHand: onHand, reserved: reserved}, nil
}

// ProductID is the product the stock belongs to.
func (s Stock) ProductID() string { return s.productID }

// SKU is the product's stock keeping unit.
func (s Stock) SKU() string { return s.sku }

// OnHand is the number of units in the warehouse.
func (s Stock) OnHand() int { return s.onHand }

// Reserved is the number of units held for pending orders.
func (s Stock) Reserved() int { return s.reserved }

// Available is what new orders may reserve: on hand minus reserved.
func (s Stock) Available() int { return s.onHand - s.reserved }

// Levels are the three numbers of a stock, for comparisons and events.
type Levels struct{ OnHand, Reserved, Available int }

// Levels returns the stock's current levels.
func (s Stock) Levels() Levels {
	return Levels{OnHand: s.onHand, Reserved: s.reserved, Available: s.Available()}
}

// Rename records a new stock keeping unit for the product.
func (s *Stock) Rename(sku string) error {
	sku = strings.TrimSpace(sku)
	if sku == "" || len(sku) > MaxSKULength {
		return fmt.Errorf("%w: sku %q must have 1 to %d characters", ErrInvalid, sku, MaxSKULength)
	}
	s.sku = sku
	return nil
}

// Adjust changes the units on hand by delta (a delivery, a write-off or a
// count correction). It never takes on hand below what is reserved: reserved
// units belong to orders.
func (s *Stock) Adjust(delta int) error {
	switch {
	case delta == 0:
		return fmt.Errorf("%w: must not be zero", ErrInvalidAdjustment)
	case delta > MaxAdjust || delta < -MaxAdjust:
		return fmt.Errorf("%w: must be between -%d and %d", ErrInvalidAdjustment, MaxAdjust, MaxAdjust)
	}
	next := s.onHand + delta
	switch {
	case next < s.reserved:
		return fmt.Errorf("%w: cannot remove %d units, only %d on hand are not reserved for orders",
			ErrInsufficientStock, -delta, s.Available())
	case next > MaxOnHand:
		return fmt.Errorf("%w: would take stock on hand beyond the maximum of %d", ErrInvalidAdjustment, MaxOnHand)
	}
	s.onHand = next
	return nil
}

// Reserve holds qty available units for an order.
func (s *Stock) Reserve(qty int) error {
	if err := checkQuantity(qty); err != nil {
		return err
	}
	if qty > s.Available() {
		return fmt.Errorf("%w: %d requested, %d available", ErrInsufficientStock, qty, s.Available())
	}
	s.reserved += qty
	return nil
}

// Release gives qty reserved units back to availability.
func (s *Stock) Release(qty int) error {
	if err := checkQuantity(qty); err != nil {
		return err
	}
	if qty > s.reserved {
		return fmt.Errorf("%w: cannot release %d of %d reserved", ErrInvalid, qty, s.reserved)
	}
	s.reserved -= qty
	return nil
}

// Commit ships qty reserved units out: they leave both reserved and on hand,
// so availability does not change.
func (s *Stock) Commit(qty int) error {
	if err := checkQuantity(qty); err != nil {
		return err
	}
	if qty > s.reserved {
		return fmt.Errorf("%w: cannot commit %d of %d reserved", ErrInvalid, qty, s.reserved)
	}
	s.reserved -= qty
	s.onHand -= qty
	return nil
}

// Return puts qty committed units back on hand.
func (s *Stock) Return(qty int) error {
	if err := checkQuantity(qty); err != nil {
		return err
	}
	if s.onHand+qty > MaxOnHand {
		return fmt.Errorf("%w: returning %d to %d on hand exceeds the maximum of %d", ErrInvalid, qty, s.onHand, MaxOnHand)
	}
	s.onHand += qty
	return nil
}

func checkQuantity(qty int) error {
	if qty < 1 || qty > MaxOnHand {
		return fmt.Errorf("%w: quantity %d outside 1..%d", ErrInvalid, qty, MaxOnHand)
	}
	return nil
}

// CrossedLowStock reports whether a change from before to after took
// availability from above threshold to at or below it. A negative threshold
// disables low-stock detection.
func CrossedLowStock(before, after Levels, threshold int) bool {
	return threshold >= 0 && after.Available <= threshold && before.Available > threshold
}
