package domain

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
)

// Status is the state of an order's reservation. The transitions are
//
//	(none) -> held | failed | voided
//	held -> committed | released
//	committed -> returned
//
// and nothing else, so every compensation happens at most once per order.
type Status string

// Reservation states.
const (
	// StatusHeld: every line is reserved and waits for the order's outcome.
	StatusHeld Status = "held"
	// StatusFailed: the order could not be covered; nothing was reserved.
	StatusFailed Status = "failed"
	// StatusCommitted: the order was confirmed and its units left stock.
	StatusCommitted Status = "committed"
	// StatusReleased: the order was cancelled while its units were held.
	StatusReleased Status = "released"
	// StatusReturned: the order was cancelled after its units were committed
	// and they came back on hand.
	StatusReturned Status = "returned"
	// StatusVoided: the order was cancelled before anything was reserved; a
	// placement arriving afterwards reserves nothing.
	StatusVoided Status = "voided"
)

func (s Status) valid() bool {
	switch s {
	case StatusHeld, StatusFailed, StatusCommitted, StatusReleased, StatusReturned, StatusVoided:
		return true
	}
	return false
}

// ErrNotReserved is returned when an order is confirmed whose stock was never
// reserved (no reservation, or a failed one): the order saga and inventory
// disagree, which no retry can fix.
var ErrNotReserved = errors.New("order has no stock reservation")

// MaxDemand is the largest quantity of one product an order is counted as
// asking for (the contracts' integer range).
const MaxDemand = math.MaxInt32

// Line is a quantity of one product held for an order.
type Line struct {
	ProductID string
	Quantity  int
}

// Shortage is a product an order could not get enough of.
type Shortage struct {
	ProductID string
	Requested int
	Available int
}

// Demand returns an order's lines as one line per product (an order may list
// a product twice), sorted by product id, rejecting an empty order, a bad id
// or a quantity below 1. Totals saturate at MaxDemand: more than stock can
// ever hold is simply short.
func Demand(lines []Line) ([]Line, error) {
	if len(lines) == 0 {
		return nil, fmt.Errorf("%w: an order needs at least one line", ErrInvalid)
	}
	total := map[string]int{}
	for _, l := range lines {
		id, err := ParseID(l.ProductID)
		if err != nil {
			return nil, err
		}
		if l.Quantity < 1 {
			return nil, fmt.Errorf("%w: quantity %d of product %s must be at least 1", ErrInvalid, l.Quantity, id)
		}
		total[id] = min(total[id]+min(l.Quantity, MaxDemand), MaxDemand)
	}
	out := make([]Line, 0, len(total))
	for _, id := range slices.Sorted(maps.Keys(total)) {
		out = append(out, Line{ProductID: id, Quantity: total[id]})
	}
	return out, nil
}

// Reservation is the one reservation of an order.
type Reservation struct {
	orderID string
	status  Status
	lines   []Line // what is held or was committed; empty unless it ever held stock
}

// ReservationFromDatabase rebuilds a stored reservation.
func ReservationFromDatabase(orderID string, status Status, lines []Line) (Reservation, error) {
	id, err := ParseID(orderID)
	if err != nil {
		return Reservation{}, err
	}
	if !status.valid() {
		return Reservation{}, fmt.Errorf("%w: reservation status %q", ErrInvalid, status)
	}
	holdsLines := status == StatusHeld || status == StatusCommitted || status == StatusReleased || status == StatusReturned
	if holdsLines != (len(lines) > 0) {
		return Reservation{}, fmt.Errorf("%w: reservation %s is %s with %d lines", ErrInvalid, id, status, len(lines))
	}
	if holdsLines {
		if lines, err = Demand(lines); err != nil {
			return Reservation{}, err
		}
	}
	return Reservation{orderID: id, status: status, lines: lines}, nil
}

// OrderID is the order the reservation belongs to.
func (r Reservation) OrderID() string { return r.orderID }

// Status is the reservation's state.
func (r Reservation) Status() Status { return r.status }

// Lines are the units held or committed, one per product, sorted by product.
func (r Reservation) Lines() []Line { return slices.Clone(r.lines) }

// Stocks are the stock records a reservation works on, by product id.
type Stocks map[string]*Stock

// Reserve decides an order's reservation, all or nothing: when available
// stock covers every line of demand (see Demand), it reserves them all and
// returns a held reservation; otherwise it changes no stock and returns a
// failed reservation with every line that is short. A product without a
// stock record has nothing available.
func Reserve(orderID string, demand []Line, stock Stocks) (Reservation, []Shortage, error) {
	id, err := ParseID(orderID)
	if err != nil {
		return Reservation{}, nil, err
	}
	if demand, err = Demand(demand); err != nil {
		return Reservation{}, nil, err
	}
	var short []Shortage
	for _, l := range demand {
		available := 0
		if s := stock[l.ProductID]; s != nil {
			available = s.Available()
		}
		if l.Quantity > available {
			short = append(short, Shortage{ProductID: l.ProductID, Requested: l.Quantity, Available: available})
		}
	}
	if len(short) > 0 {
		return Reservation{orderID: id, status: StatusFailed}, short, nil
	}
	for _, l := range demand {
		if err := stock[l.ProductID].Reserve(l.Quantity); err != nil {
			// Unreachable after the check above; kept so a broken invariant
			// fails loudly instead of reserving half an order.
			return Reservation{}, nil, fmt.Errorf("reserve %s for order %s: %w", l.ProductID, id, err)
		}
	}
	return Reservation{orderID: id, status: StatusHeld, lines: demand}, nil, nil
}

// Void returns the reservation of an order cancelled before inventory saw it
// placed: it holds nothing, and a placement arriving later reserves nothing.
func Void(orderID string) (Reservation, error) {
	id, err := ParseID(orderID)
	if err != nil {
		return Reservation{}, err
	}
	return Reservation{orderID: id, status: StatusVoided}, nil
}

// Commit ships a held reservation out of stock when its order is confirmed.
// It reports false, changing nothing, for a reservation already committed or
// one whose order was cancelled first (a stale confirmation). Confirming an
// order whose reservation failed is ErrNotReserved.
func (r *Reservation) Commit(stock Stocks) (bool, error) {
	switch r.status {
	case StatusHeld:
	case StatusFailed:
		return false, fmt.Errorf("%w: order %s could not be reserved", ErrNotReserved, r.orderID)
	default:
		return false, nil
	}
	if err := r.apply(stock, (*Stock).Commit); err != nil {
		return false, err
	}
	r.status = StatusCommitted
	return true, nil
}

// Undo is what cancelling an order did to its reservation.
type Undo int

// Outcomes of Cancel.
const (
	UndoNothing Undo = iota
	UndoReleased
	UndoReturned
)

// Cancel undoes what a cancelled order holds. The order's compensation list
// says whether to undo stock at all; the reservation's state says how:
//
//   - held units are released, listed or not: an order cancelled while its
//     reservation reply was still in flight does not know it holds them, and
//     they would otherwise be lost to every other order;
//   - committed units are returned when the order asks for a stock
//     compensation (release or return), and kept out otherwise (the order
//     decided the goods are gone);
//   - failed, released, returned or voided reservations hold nothing.
func (r *Reservation) Cancel(stockCompensation bool, stock Stocks) (Undo, error) {
	switch {
	case r.status == StatusHeld:
		if err := r.apply(stock, (*Stock).Release); err != nil {
			return UndoNothing, err
		}
		r.status = StatusReleased
		return UndoReleased, nil
	case r.status == StatusCommitted && stockCompensation:
		if err := r.apply(stock, (*Stock).Return); err != nil {
			return UndoNothing, err
		}
		r.status = StatusReturned
		return UndoReturned, nil
	}
	return UndoNothing, nil
}

// apply runs op on the stock of every line; stock must hold all of them.
func (r *Reservation) apply(stock Stocks, op func(*Stock, int) error) error {
	for _, l := range r.lines {
		s := stock[l.ProductID]
		if s == nil {
			return fmt.Errorf("%w: no stock record for product %s of order %s", ErrInvalid, l.ProductID, r.orderID)
		}
		if err := op(s, l.Quantity); err != nil {
			return fmt.Errorf("order %s, product %s: %w", r.orderID, l.ProductID, err)
		}
	}
	return nil
}
