package app_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/services/analytics/internal/app"
	"github.com/shopmesh/shopmesh/services/analytics/internal/domain"
)

var at = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

// example decodes the golden example of an event type as the consumer
// does: upcast to the latest version of its type.
func example(t *testing.T, et contracts.EventType) app.Event {
	t.Helper()
	typ, payload, err := contracts.Upcast(et.Name, et.Example)
	if err != nil {
		t.Fatalf("example of %s: %v", et.Name, err)
	}
	latest, err := contracts.Lookup(typ)
	if err != nil {
		t.Fatal(err)
	}
	v := latest.New()
	if err := contracts.Decode(typ, payload, v); err != nil {
		t.Fatalf("example of %s: %v", et.Name, err)
	}
	return app.Event{ID: "id-" + et.Name, Type: typ, OccurredAt: at, Payload: v}
}

func TestEveryConsumedTypeIsAggregated(t *testing.T) {
	for _, et := range contracts.Registry() {
		ev := example(t, et)
		c, err := app.Contribute(ev)
		consumed := slices.Contains(et.Consumers, "analytics")
		switch {
		case consumed && err != nil:
			t.Errorf("%s: %v", et.Name, err)
		case consumed && (c.EventType != ev.Type || !c.Day.Equal(at.Truncate(24*time.Hour))):
			t.Errorf("%s: contribution %+v", et.Name, c)
		case !consumed && !errors.Is(err, app.ErrUnhandled):
			t.Errorf("%s is not consumed but contributes: %v", et.Name, err)
		}
	}
}

func TestContributionsOfKeyEvents(t *testing.T) {
	of := func(eventType string) *domain.Contribution {
		t.Helper()
		et, err := contracts.Lookup(eventType)
		if err != nil {
			t.Fatal(err)
		}
		c, err := app.Contribute(example(t, et))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := of(contracts.TypeOrderConfirmedV1); c.Sale == nil || len(c.Products) == 0 || len(c.Descriptions) == 0 {
		t.Errorf("confirmed order: %+v", c)
	}
	if c := of(contracts.TypePaymentRefundedV1); c.Refund == nil || c.Sale != nil {
		t.Errorf("refund: %+v", c)
	}
	if c := of(contracts.TypeOrderCancelledV1); c.Outcome != domain.OutcomeCancelled || c.Reason == "" {
		t.Errorf("cancellation: %+v", c)
	}
	if c := of(contracts.TypeOrderCompletedV1); c.Outcome != domain.OutcomeCompleted {
		t.Errorf("completion: %+v", c)
	}
	if c := of(contracts.TypeCartLineUpdatedV1); c.CartTouchedBy == "" {
		t.Errorf("cart change: %+v", c)
	}
	if c := of(contracts.TypeStockReservedV1); len(c.Stock) == 0 || c.Stock[0].Counts[domain.StockReserved] == 0 {
		t.Errorf("reservation: %+v", c)
	}
	if c := of(contracts.TypeLowStockV1); len(c.Stock) != 1 || c.Stock[0].Counts[domain.StockLowAlert] != 1 {
		t.Errorf("low stock: %+v", c)
	}
	if c := of(contracts.TypeNotificationSentV1); c.Sale != nil || c.Outcome != "" || len(c.Stock) != 0 || c.CartTouchedBy != "" {
		t.Errorf("a notification contributes more than its count: %+v", c)
	}
}

func TestEventWithoutTimeIsRejected(t *testing.T) {
	_, err := app.Contribute(app.Event{ID: "x", Type: contracts.TypeOrderShippedV1, Payload: &contracts.OrderShippedV1{}})
	if !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("event without time: %v", err)
	}
}

// fakeReports records the periods asked for and returns canned rows.
type fakeReports struct {
	periods []domain.Period
	stages  app.FunnelStages
}

func (f *fakeReports) Sales(_ context.Context, p domain.Period) ([]domain.Sales, error) {
	f.periods = append(f.periods, p)
	return []domain.Sales{{Day: p.From, Currency: "EUR", OrdersConfirmed: 1, RevenueMinor: 100}}, nil
}

func (f *fakeReports) Outcomes(context.Context, domain.Period) (domain.Outcomes, error) {
	return domain.Outcomes{Completed: 1}, nil
}

func (f *fakeReports) TopProducts(_ context.Context, _ domain.Period, limit int) ([]domain.ProductRank, error) {
	return make([]domain.ProductRank, limit), nil
}

func (f *fakeReports) Stock(context.Context, domain.Period, int) ([]domain.StockSummary, error) {
	return nil, nil
}

func (f *fakeReports) Funnel(_ context.Context, p domain.Period, stages app.FunnelStages) (domain.Funnel, error) {
	f.periods, f.stages = append(f.periods, p), stages
	return domain.Funnel{Placed: 3}, nil
}

func TestReports(t *testing.T) {
	f := &fakeReports{}
	now := func() time.Time { return time.Date(2025, 3, 31, 18, 0, 0, 0, time.UTC) }
	s, err := app.NewService(f, app.Config{TopProducts: 3, StockProducts: 5}, now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := s.SalesReport(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Period.From.Format(time.DateOnly) != "2025-03-02" || r.Period.To.Format(time.DateOnly) != "2025-03-31" ||
		len(r.Top) != 3 || len(r.Totals) != 1 || r.Outcomes.Completed != 1 {
		t.Errorf("sales report = %+v", r)
	}
	from := time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC)
	fn, err := s.FunnelReport(ctx, &from, nil)
	if err != nil || fn.Placed != 3 || !fn.Period.From.Equal(from) || f.stages != app.ShopFunnel() {
		t.Errorf("funnel = %+v, %v", fn, err)
	}
	late := time.Date(2025, 4, 10, 0, 0, 0, 0, time.UTC)
	if _, err := s.FunnelReport(ctx, &late, nil); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("reversed period: %v", err)
	}
	if _, err := app.NewService(f, app.Config{TopProducts: 0, StockProducts: 5}, now); err == nil {
		t.Error("zero top products accepted")
	}
}
