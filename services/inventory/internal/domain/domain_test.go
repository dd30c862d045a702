package domain_test

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/shopmesh/shopmesh/services/inventory/internal/domain"
)

const (
	cup     = "0190d6a2-0f11-7a22-8b33-4c44d55e66f7"
	grinder = "0190d6a2-0f11-7a22-8b33-4c44d55e6708"
	kettle  = "0190d6a2-0f11-7a22-8b33-4c44d55e6710"
	order1  = "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90"
)

func stock(t *testing.T, id string, onHand, reserved int) *domain.Stock {
	t.Helper()
	s, err := domain.StockFromDatabase(id, "SKU-"+id[len(id)-4:], onHand, reserved)
	if err != nil {
		t.Fatalf("stock %s: %v", id, err)
	}
	return &s
}

func TestStockFromDatabaseRejectsBrokenInvariants(t *testing.T) {
	tests := []struct {
		name             string
		id, sku          string
		onHand, reserved int
	}{
		{"negative on hand", cup, "CUP", -1, 0},
		{"negative reserved", cup, "CUP", 5, -1},
		{"reserved above on hand", cup, "CUP", 5, 6},
		{"on hand above maximum", cup, "CUP", domain.MaxOnHand + 1, 0},
		{"bad id", "not-a-uuid", "CUP", 1, 0},
		{"braced id", "{" + cup[:34] + "}", "CUP", 1, 0},
		{"empty sku", cup, "  ", 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := domain.StockFromDatabase(tt.id, tt.sku, tt.onHand, tt.reserved)
			if !errors.Is(err, domain.ErrInvalid) {
				t.Errorf("got %v, want ErrInvalid", err)
			}
		})
	}
	s, err := domain.StockFromDatabase("0190D6A2-0F11-7A22-8B33-4C44D55E66F7", "CUP", 10, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.ProductID(), cup; got != want {
		t.Errorf("product id %q, want canonical %q", got, want)
	}
	if got, want := s.Levels(), (domain.Levels{OnHand: 10, Reserved: 4, Available: 6}); got != want {
		t.Errorf("levels %+v, want %+v", got, want)
	}
}

func TestAdjust(t *testing.T) {
	tests := []struct {
		name             string
		onHand, reserved int
		delta            int
		want             domain.Levels
		err              error
	}{
		{"restock", 10, 4, 5, domain.Levels{OnHand: 15, Reserved: 4, Available: 11}, nil},
		{"write off available units", 10, 4, -6, domain.Levels{OnHand: 4, Reserved: 4, Available: 0}, nil},
		{"below reserved", 10, 4, -7, domain.Levels{}, domain.ErrInsufficientStock},
		{"below zero", 3, 0, -4, domain.Levels{}, domain.ErrInsufficientStock},
		{"zero", 3, 0, 0, domain.Levels{}, domain.ErrInvalidAdjustment},
		{"too large", 3, 0, domain.MaxAdjust + 1, domain.Levels{}, domain.ErrInvalidAdjustment},
		{"too small", 3, 0, -domain.MaxAdjust - 1, domain.Levels{}, domain.ErrInvalidAdjustment},
		{"beyond max on hand", domain.MaxOnHand - 1, 0, 2, domain.Levels{}, domain.ErrInvalidAdjustment},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := stock(t, cup, tt.onHand, tt.reserved)
			before := s.Levels()
			err := s.Adjust(tt.delta)
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("got error %v, want %v", err, tt.err)
			}
			if tt.err != nil {
				if s.Levels() != before {
					t.Errorf("failed adjustment changed levels to %+v", s.Levels())
				}
				return
			}
			if s.Levels() != tt.want {
				t.Errorf("levels %+v, want %+v", s.Levels(), tt.want)
			}
		})
	}
}

func TestStockArithmeticKeepsAvailableConsistent(t *testing.T) {
	s := stock(t, cup, 10, 0)
	steps := []struct {
		name string
		op   func() error
		want domain.Levels
	}{
		{"reserve 4", func() error { return s.Reserve(4) }, domain.Levels{OnHand: 10, Reserved: 4, Available: 6}},
		{"commit 3", func() error { return s.Commit(3) }, domain.Levels{OnHand: 7, Reserved: 1, Available: 6}},
		{"release 1", func() error { return s.Release(1) }, domain.Levels{OnHand: 7, Reserved: 0, Available: 7}},
		{"return 3", func() error { return s.Return(3) }, domain.Levels{OnHand: 10, Reserved: 0, Available: 10}},
	}
	for _, st := range steps {
		if err := st.op(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if s.Levels() != st.want {
			t.Fatalf("after %s: %+v, want %+v", st.name, s.Levels(), st.want)
		}
	}
	for name, op := range map[string]func() error{
		"reserve more than available": func() error { return s.Reserve(11) },
		"release more than reserved":  func() error { return s.Release(1) },
		"commit more than reserved":   func() error { return s.Commit(1) },
		"reserve zero":                func() error { return s.Reserve(0) },
		"return negative":             func() error { return s.Return(-1) },
	} {
		if err := op(); err == nil {
			t.Errorf("%s: no error", name)
		}
		if got, want := s.Levels(), (domain.Levels{OnHand: 10, Available: 10}); got != want {
			t.Errorf("%s changed levels to %+v", name, got)
		}
	}
}

func TestCrossedLowStock(t *testing.T) {
	lv := func(available int) domain.Levels { return domain.Levels{OnHand: available, Available: available} }
	tests := []struct {
		before, after, threshold int
		want                     bool
	}{
		{10, 5, 5, true},
		{6, 0, 5, true},
		{5, 4, 5, false}, // already low
		{10, 6, 5, false},
		{3, 10, 5, false},
		{10, 0, -1, false}, // disabled
		{1, 0, 0, true},
	}
	for _, tt := range tests {
		if got := domain.CrossedLowStock(lv(tt.before), lv(tt.after), tt.threshold); got != tt.want {
			t.Errorf("%d -> %d with threshold %d: got %v, want %v", tt.before, tt.after, tt.threshold, got, tt.want)
		}
	}
}

func TestDemandMergesLinesOfOneProduct(t *testing.T) {
	got, err := domain.Demand([]domain.Line{{grinder, 1}, {cup, 2}, {grinder, 3}})
	if err != nil {
		t.Fatal(err)
	}
	want := []domain.Line{{cup, 2}, {grinder, 4}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	huge, err := domain.Demand([]domain.Line{{cup, math.MaxInt32}, {cup, math.MaxInt32}})
	if err != nil {
		t.Fatal(err)
	}
	if huge[0].Quantity != math.MaxInt32 {
		t.Errorf("saturated demand %d, want %d", huge[0].Quantity, math.MaxInt32)
	}
	for name, lines := range map[string][]domain.Line{
		"empty":         nil,
		"zero quantity": {{cup, 0}},
		"negative":      {{cup, -2}},
		"bad product":   {{"cup", 1}},
	} {
		if _, err := domain.Demand(lines); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
}

func TestReserveIsAllOrNothing(t *testing.T) {
	stocks := domain.Stocks{cup: stock(t, cup, 5, 0), grinder: stock(t, grinder, 1, 0)}
	res, short, err := domain.Reserve(order1, []domain.Line{{cup, 2}, {grinder, 2}, {kettle, 1}}, stocks)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status() != domain.StatusFailed {
		t.Errorf("status %s, want failed", res.Status())
	}
	wantShort := []domain.Shortage{{ProductID: grinder, Requested: 2, Available: 1}, {ProductID: kettle, Requested: 1, Available: 0}}
	if !slices.Equal(short, wantShort) {
		t.Errorf("shortages %v, want %v", short, wantShort)
	}
	if len(res.Lines()) != 0 {
		t.Errorf("failed reservation holds %v", res.Lines())
	}
	if stocks[cup].Reserved() != 0 || stocks[grinder].Reserved() != 0 {
		t.Errorf("a failed reservation reserved units: cup %d, grinder %d", stocks[cup].Reserved(), stocks[grinder].Reserved())
	}

	res, short, err = domain.Reserve(order1, []domain.Line{{cup, 2}, {grinder, 1}, {cup, 3}}, stocks)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status() != domain.StatusHeld || len(short) != 0 {
		t.Fatalf("status %s with shortages %v, want held", res.Status(), short)
	}
	if got, want := res.Lines(), []domain.Line{{cup, 5}, {grinder, 1}}; !slices.Equal(got, want) {
		t.Errorf("lines %v, want %v", got, want)
	}
	if stocks[cup].Available() != 0 || stocks[grinder].Available() != 0 {
		t.Errorf("available after reserving everything: cup %d, grinder %d", stocks[cup].Available(), stocks[grinder].Available())
	}
}

func held(t *testing.T, stocks domain.Stocks, lines ...domain.Line) domain.Reservation {
	t.Helper()
	res, short, err := domain.Reserve(order1, lines, stocks)
	if err != nil || len(short) > 0 {
		t.Fatalf("reserve: %v %v", err, short)
	}
	return res
}

func TestCommitThenCancelReturnsOnce(t *testing.T) {
	stocks := domain.Stocks{cup: stock(t, cup, 5, 0)}
	res := held(t, stocks, domain.Line{cup, 2})
	changed, err := res.Commit(stocks)
	if err != nil || !changed {
		t.Fatalf("commit: %v %v", changed, err)
	}
	if got, want := stocks[cup].Levels(), (domain.Levels{OnHand: 3, Reserved: 0, Available: 3}); got != want {
		t.Errorf("after commit %+v, want %+v", got, want)
	}
	if changed, err := res.Commit(stocks); err != nil || changed {
		t.Errorf("second commit: changed %v, err %v", changed, err)
	}
	undo, err := res.Cancel(true, stocks)
	if err != nil || undo != domain.UndoReturned {
		t.Fatalf("cancel: %v %v", undo, err)
	}
	if got, want := stocks[cup].Levels(), (domain.Levels{OnHand: 5, Reserved: 0, Available: 5}); got != want {
		t.Errorf("after return %+v, want %+v", got, want)
	}
	if undo, err := res.Cancel(true, stocks); err != nil || undo != domain.UndoNothing {
		t.Errorf("second cancel: %v %v", undo, err)
	}
	if stocks[cup].OnHand() != 5 {
		t.Errorf("second cancel returned again: on hand %d", stocks[cup].OnHand())
	}
}

func TestCancelFollowsTheReservationState(t *testing.T) {
	t.Run("held is released even when not listed", func(t *testing.T) {
		stocks := domain.Stocks{cup: stock(t, cup, 5, 0)}
		res := held(t, stocks, domain.Line{cup, 2})
		undo, err := res.Cancel(false, stocks)
		if err != nil || undo != domain.UndoReleased || res.Status() != domain.StatusReleased {
			t.Fatalf("got %v %v %s", undo, err, res.Status())
		}
		if stocks[cup].Reserved() != 0 || stocks[cup].OnHand() != 5 {
			t.Errorf("levels %+v", stocks[cup].Levels())
		}
		// A confirmation arriving after the cancellation is stale.
		if changed, err := res.Commit(stocks); err != nil || changed {
			t.Errorf("commit after release: %v %v", changed, err)
		}
	})
	t.Run("committed stays out without a stock compensation", func(t *testing.T) {
		stocks := domain.Stocks{cup: stock(t, cup, 5, 0)}
		res := held(t, stocks, domain.Line{cup, 2})
		if _, err := res.Commit(stocks); err != nil {
			t.Fatal(err)
		}
		undo, err := res.Cancel(false, stocks)
		if err != nil || undo != domain.UndoNothing || res.Status() != domain.StatusCommitted {
			t.Fatalf("got %v %v %s", undo, err, res.Status())
		}
		if stocks[cup].OnHand() != 3 {
			t.Errorf("on hand %d, want 3", stocks[cup].OnHand())
		}
	})
	t.Run("voided and failed hold nothing", func(t *testing.T) {
		stocks := domain.Stocks{cup: stock(t, cup, 5, 0)}
		void, err := domain.Void(order1)
		if err != nil {
			t.Fatal(err)
		}
		failed, _, err := domain.Reserve(order1, []domain.Line{{cup, 6}}, stocks)
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range []domain.Reservation{void, failed} {
			if undo, err := res.Cancel(true, stocks); err != nil || undo != domain.UndoNothing {
				t.Errorf("%s: %v %v", res.Status(), undo, err)
			}
		}
		if _, err := failed.Commit(stocks); !errors.Is(err, domain.ErrNotReserved) {
			t.Errorf("commit of failed reservation: %v, want ErrNotReserved", err)
		}
		if changed, err := void.Commit(stocks); err != nil || changed {
			t.Errorf("commit of voided reservation: %v %v", changed, err)
		}
		if stocks[cup].Levels() != (domain.Levels{OnHand: 5, Available: 5}) {
			t.Errorf("levels %+v", stocks[cup].Levels())
		}
	})
}

func TestReservationFromDatabase(t *testing.T) {
	if _, err := domain.ReservationFromDatabase(order1, domain.StatusHeld, nil); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("held without lines: %v", err)
	}
	if _, err := domain.ReservationFromDatabase(order1, domain.StatusFailed, []domain.Line{{cup, 1}}); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("failed with lines: %v", err)
	}
	if _, err := domain.ReservationFromDatabase(order1, "lost", nil); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("unknown status: %v", err)
	}
	r, err := domain.ReservationFromDatabase(order1, domain.StatusCommitted, []domain.Line{{cup, 1}})
	if err != nil || r.Status() != domain.StatusCommitted {
		t.Errorf("committed: %v %v", r.Status(), err)
	}
}
