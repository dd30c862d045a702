package app

import (
	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/inventory/internal/domain"
)

// levelEvents are the events of one product's stock change: its levels after
// the change (catalog keeps availability from them) and, when the change took
// availability to or below the threshold, a low-stock alert. A change that
// leaves the levels as they were publishes nothing.
func (s *Service) levelEvents(before domain.Levels, after domain.Stock) []outbox.Event {
	lv := after.Levels()
	if lv == before {
		return nil
	}
	events := []outbox.Event{{
		Type:        contracts.TypeStockLevelChangedV1,
		AggregateID: after.ProductID(),
		Payload: contracts.StockLevelChangedV1{
			ProductID: after.ProductID(), SKU: after.SKU(),
			OnHand: lv.OnHand, Reserved: lv.Reserved, Available: lv.Available,
		},
	}}
	if domain.CrossedLowStock(before, lv, s.policy.LowStockThreshold) {
		events = append(events, s.lowStockEvent(after))
	}
	return events
}

func (s *Service) lowStockEvent(st domain.Stock) outbox.Event {
	return outbox.Event{
		Type:        contracts.TypeLowStockV1,
		AggregateID: st.ProductID(),
		Payload: contracts.LowStockV1{
			ProductID: st.ProductID(), SKU: st.SKU(),
			Available: st.Available(), Threshold: s.policy.LowStockThreshold,
		},
	}
}

func adjustedEvent(st domain.Stock, delta int, reason contracts.AdjustmentReason) outbox.Event {
	lv := st.Levels()
	return outbox.Event{
		Type:        contracts.TypeStockAdjustedV1,
		AggregateID: st.ProductID(),
		Payload: contracts.StockAdjustedV1{
			ProductID: st.ProductID(), SKU: st.SKU(), Delta: delta, Reason: reason,
			OnHand: lv.OnHand, Reserved: lv.Reserved, Available: lv.Available,
		},
	}
}

func stockLines(lines []domain.Line) []contracts.StockLine {
	out := make([]contracts.StockLine, len(lines))
	for i, l := range lines {
		out[i] = contracts.StockLine{ProductID: l.ProductID, Quantity: l.Quantity}
	}
	return out
}

// snapshot remembers the levels of every stock before a decision changes
// them, so that the events name exactly the products that changed.
func snapshot(stock domain.Stocks) map[string]domain.Levels {
	out := make(map[string]domain.Levels, len(stock))
	for id, s := range stock {
		if s != nil {
			out[id] = s.Levels()
		}
	}
	return out
}

// changedLevels returns the level events of every stock that changed since
// before, in product order (the order reservations lock them in).
func (s *Service) changedLevels(before map[string]domain.Levels, stock domain.Stocks, lines []domain.Line) []outbox.Event {
	var events []outbox.Event
	for _, l := range lines {
		if st := stock[l.ProductID]; st != nil {
			events = append(events, s.levelEvents(before[l.ProductID], *st)...)
		}
	}
	return events
}
