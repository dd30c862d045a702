package domain_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/services/order/internal/domain"
)

const (
	orderID    = "0190a1b2-0000-7000-8000-000000000001"
	userID     = "0190a1b2-0000-7000-8000-0000000000aa"
	productA   = "0190a1b2-0000-7000-8000-0000000000f1"
	productB   = "0190a1b2-0000-7000-8000-0000000000f2"
	paymentID  = "0190a1b2-0000-7000-8000-0000000000b1"
	shipmentID = "0190a1b2-0000-7000-8000-0000000000c1"
	timeout    = 30 * time.Second
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func eur(minor int64) domain.Money { return domain.Money{AmountMinor: minor, Currency: "EUR"} }

func placement() domain.Placement {
	return domain.Placement{
		ID:     orderID,
		UserID: userID,
		Lines: []domain.Line{
			{ProductID: productA, SKU: "A-1", Name: "Mug", Quantity: 2, UnitPrice: eur(1250)},
			{ProductID: productB, SKU: "B-1", Name: "Tea", Quantity: 1, UnitPrice: eur(500)},
		},
		Total:           eur(3000),
		ShippingAddress: domain.Address{Name: "Ada", Line1: "1 Main St", City: "Berlin", PostalCode: "10115", Country: "DE"},
		PaymentToken:    "tok_ok",
	}
}

func newSaga(t *testing.T) domain.Saga {
	t.Helper()
	s, err := domain.NewSaga(timeout)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Every reply, with the ids a real flow would carry.
var replies = []struct {
	name  string
	reply domain.Reply
}{
	{"stock reserved", domain.StockReserved{}},
	{"stock reservation failed", domain.StockReservationFailed{}},
	{"payment authorized", domain.PaymentAuthorized{PaymentID: paymentID, Amount: eur(3000)}},
	{"payment declined", domain.PaymentDeclined{PaymentID: paymentID}},
	{"payment timed out", domain.PaymentTimedOut{ExpiresAt: t0.Add(timeout)}},
	{"shipment created", domain.ShipmentCreated{ShipmentID: shipmentID}},
	{"shipment dispatched", domain.ShipmentDispatched{ShipmentID: shipmentID, Carrier: "sim", TrackingNumber: "T1"}},
	{"shipment delivered", domain.ShipmentDelivered{ShipmentID: shipmentID}},
	{"shipment failed", domain.ShipmentFailed{ShipmentID: shipmentID}},
	{"shipment cancelled", domain.ShipmentCancelled{ShipmentID: shipmentID}},
	{"payment refunded", domain.PaymentRefunded{PaymentID: paymentID}},
	{"stock released", domain.StockReleased{}},
	{"stock returned", domain.StockReturned{}},
}

func reply(name string) domain.Reply {
	for _, r := range replies {
		if r.name == name {
			return r.reply
		}
	}
	panic("no reply " + name)
}

// starts builds an order in every state the saga distinguishes, by driving
// it there through the saga itself.
var starts = []struct {
	name  string
	steps []string // replies; "cancel" is the customer's cancellation
}{
	{"awaiting_stock", nil},
	{"awaiting_payment", []string{"stock reserved"}},
	{"confirmed", []string{"stock reserved", "payment authorized"}},
	{"confirmed with shipment", []string{"stock reserved", "payment authorized", "shipment created"}},
	{"cancellation_requested", []string{"stock reserved", "payment authorized", "cancel"}},
	{"shipped", []string{"stock reserved", "payment authorized", "shipment created", "shipment dispatched"}},
	{"delivered", []string{"stock reserved", "payment authorized", "shipment created", "shipment dispatched", "shipment delivered"}},
	{"cancelled out of stock", []string{"stock reservation failed"}},
	{"cancelled payment timeout", []string{"stock reserved", "payment timed out"}},
	{"cancelled undeliverable", []string{"stock reserved", "payment authorized", "shipment created", "shipment failed"}},
}

func build(t *testing.T, s domain.Saga, start string) *domain.Order {
	t.Helper()
	o, _, err := s.Place(placement(), t0)
	if err != nil {
		t.Fatalf("place: %v", err)
	}
	for _, st := range starts {
		if st.name != start {
			continue
		}
		for i, step := range st.steps {
			at := t0.Add(time.Duration(i+1) * time.Second)
			if step == "cancel" {
				if _, err := s.Cancel(o, at); err != nil {
					t.Fatalf("build %s: cancel: %v", start, err)
				}
				continue
			}
			before := o.Revision()
			s.Apply(o, reply(step), at)
			if o.Revision() == before {
				t.Fatalf("build %s: step %q had no effect", start, step)
			}
		}
		return o
	}
	t.Fatalf("no start %q", start)
	return nil
}

func eventNames(events []domain.Event) []string {
	names := make([]string, 0, len(events))
	for _, e := range events {
		names = append(names, fmt.Sprintf("%T", e))
	}
	return names
}

func timelineTypes(o *domain.Order) []domain.TimelineType {
	var types []domain.TimelineType
	for _, e := range o.Timeline() {
		types = append(types, e.Type)
	}
	return types
}

type transition struct {
	from, reply string
	state       domain.State
	reason      domain.Reason
	events      []string
	comps       []domain.Compensation // of the Cancelled event, if any
	timeline    []domain.TimelineType // entries appended
}

// transitions lists every (state, reply) pair that has an effect; every
// other pair must leave the order untouched.
var transitions = []transition{
	{from: "awaiting_stock", reply: "stock reserved", state: domain.StateAwaitingPayment,
		events:   []string{"domain.PaymentRequested", "domain.PaymentTimeoutDue"},
		timeline: []domain.TimelineType{domain.TimelineStockReserved, domain.TimelinePaymentRequested}},
	{from: "awaiting_stock", reply: "stock reservation failed", state: domain.StateCancelled, reason: domain.ReasonOutOfStock,
		events:   []string{"domain.Cancelled"},
		timeline: []domain.TimelineType{domain.TimelineStockReservationFailed, domain.TimelineCancelled}},

	{from: "awaiting_payment", reply: "payment authorized", state: domain.StateConfirmed,
		events:   []string{"domain.Confirmed"},
		timeline: []domain.TimelineType{domain.TimelinePaymentAuthorized, domain.TimelineConfirmed}},
	{from: "awaiting_payment", reply: "payment declined", state: domain.StateCancelled, reason: domain.ReasonPaymentDeclined,
		events: []string{"domain.Cancelled"}, comps: []domain.Compensation{domain.CompensateReleaseStock},
		timeline: []domain.TimelineType{domain.TimelinePaymentDeclined, domain.TimelineCancelled}},
	{from: "awaiting_payment", reply: "payment timed out", state: domain.StateCancelled, reason: domain.ReasonPaymentTimeout,
		events: []string{"domain.Cancelled"}, comps: []domain.Compensation{domain.CompensateReleaseStock},
		timeline: []domain.TimelineType{domain.TimelinePaymentTimedOut, domain.TimelineCancelled}},

	{from: "confirmed", reply: "shipment created", state: domain.StateConfirmed,
		timeline: []domain.TimelineType{domain.TimelineShipmentCreated}},
	{from: "confirmed", reply: "shipment dispatched", state: domain.StateShipped,
		events: []string{"domain.Shipped"}, timeline: []domain.TimelineType{domain.TimelineShipped}},
	{from: "confirmed", reply: "shipment delivered", state: domain.StateDelivered,
		events:   []string{"domain.Delivered", "domain.Completed"},
		timeline: []domain.TimelineType{domain.TimelineDelivered, domain.TimelineCompleted}},
	{from: "confirmed", reply: "shipment failed", state: domain.StateCancelled, reason: domain.ReasonUndeliverable,
		events:   []string{"domain.Cancelled", "domain.RefundRequested"},
		comps:    []domain.Compensation{domain.CompensateRefundPayment, domain.CompensateReturnStock},
		timeline: []domain.TimelineType{domain.TimelineShipmentFailed, domain.TimelineCancelled, domain.TimelineRefundRequested}},

	{from: "confirmed with shipment", reply: "shipment dispatched", state: domain.StateShipped,
		events: []string{"domain.Shipped"}, timeline: []domain.TimelineType{domain.TimelineShipped}},
	{from: "confirmed with shipment", reply: "shipment delivered", state: domain.StateDelivered,
		events:   []string{"domain.Delivered", "domain.Completed"},
		timeline: []domain.TimelineType{domain.TimelineDelivered, domain.TimelineCompleted}},
	{from: "confirmed with shipment", reply: "shipment failed", state: domain.StateCancelled, reason: domain.ReasonUndeliverable,
		events:   []string{"domain.Cancelled", "domain.RefundRequested"},
		comps:    []domain.Compensation{domain.CompensateRefundPayment, domain.CompensateReturnStock},
		timeline: []domain.TimelineType{domain.TimelineShipmentFailed, domain.TimelineCancelled, domain.TimelineRefundRequested}},

	{from: "cancellation_requested", reply: "shipment created", state: domain.StateCancellationRequested,
		timeline: []domain.TimelineType{domain.TimelineShipmentCreated}},
	{from: "cancellation_requested", reply: "shipment cancelled", state: domain.StateCancelled, reason: domain.ReasonCustomerRequest,
		events:   []string{"domain.Cancelled", "domain.RefundRequested"},
		comps:    []domain.Compensation{domain.CompensateRefundPayment, domain.CompensateReturnStock},
		timeline: []domain.TimelineType{domain.TimelineShipmentCancelled, domain.TimelineCancelled, domain.TimelineRefundRequested}},
	{from: "cancellation_requested", reply: "shipment dispatched", state: domain.StateShipped,
		events:   []string{"domain.Shipped"},
		timeline: []domain.TimelineType{domain.TimelineCancellationRefused, domain.TimelineShipped}},
	{from: "cancellation_requested", reply: "shipment delivered", state: domain.StateDelivered,
		events:   []string{"domain.Delivered", "domain.Completed"},
		timeline: []domain.TimelineType{domain.TimelineCancellationRefused, domain.TimelineDelivered, domain.TimelineCompleted}},
	{from: "cancellation_requested", reply: "shipment failed", state: domain.StateCancelled, reason: domain.ReasonUndeliverable,
		events:   []string{"domain.Cancelled", "domain.RefundRequested"},
		comps:    []domain.Compensation{domain.CompensateRefundPayment, domain.CompensateReturnStock},
		timeline: []domain.TimelineType{domain.TimelineShipmentFailed, domain.TimelineCancelled, domain.TimelineRefundRequested}},

	{from: "shipped", reply: "shipment delivered", state: domain.StateDelivered,
		events:   []string{"domain.Delivered", "domain.Completed"},
		timeline: []domain.TimelineType{domain.TimelineDelivered, domain.TimelineCompleted}},
	{from: "shipped", reply: "shipment failed", state: domain.StateCancelled, reason: domain.ReasonUndeliverable,
		events:   []string{"domain.Cancelled", "domain.RefundRequested"},
		comps:    []domain.Compensation{domain.CompensateRefundPayment, domain.CompensateReturnStock},
		timeline: []domain.TimelineType{domain.TimelineShipmentFailed, domain.TimelineCancelled, domain.TimelineRefundRequested}},

	{from: "cancelled out of stock", reply: "payment authorized", state: domain.StateCancelled, reason: domain.ReasonOutOfStock,
		events:   []string{"domain.RefundRequested"},
		timeline: []domain.TimelineType{domain.TimelinePaymentAuthorized, domain.TimelineRefundRequested}},
	{from: "cancelled out of stock", reply: "stock released", state: domain.StateCancelled, reason: domain.ReasonOutOfStock,
		timeline: []domain.TimelineType{domain.TimelineStockReleased}},
	{from: "cancelled out of stock", reply: "stock returned", state: domain.StateCancelled, reason: domain.ReasonOutOfStock,
		timeline: []domain.TimelineType{domain.TimelineStockReturned}},

	{from: "cancelled payment timeout", reply: "payment authorized", state: domain.StateCancelled, reason: domain.ReasonPaymentTimeout,
		events:   []string{"domain.RefundRequested"},
		timeline: []domain.TimelineType{domain.TimelinePaymentAuthorized, domain.TimelineRefundRequested}},
	{from: "cancelled payment timeout", reply: "stock released", state: domain.StateCancelled, reason: domain.ReasonPaymentTimeout,
		timeline: []domain.TimelineType{domain.TimelineStockReleased}},
	{from: "cancelled payment timeout", reply: "stock returned", state: domain.StateCancelled, reason: domain.ReasonPaymentTimeout,
		timeline: []domain.TimelineType{domain.TimelineStockReturned}},

	{from: "cancelled undeliverable", reply: "payment refunded", state: domain.StateCancelled, reason: domain.ReasonUndeliverable,
		timeline: []domain.TimelineType{domain.TimelineRefunded}},
	{from: "cancelled undeliverable", reply: "stock released", state: domain.StateCancelled, reason: domain.ReasonUndeliverable,
		timeline: []domain.TimelineType{domain.TimelineStockReleased}},
	{from: "cancelled undeliverable", reply: "stock returned", state: domain.StateCancelled, reason: domain.ReasonUndeliverable,
		timeline: []domain.TimelineType{domain.TimelineStockReturned}},
}

// TestEveryStateAndReply applies every reply to an order in every state:
// the pairs in transitions move it as listed, every other pair (duplicates,
// late and reordered replies) changes nothing, and applying the same reply
// a second time never has an effect.
func TestEveryStateAndReply(t *testing.T) {
	t.Parallel()
	s := newSaga(t)
	for _, st := range starts {
		for _, r := range replies {
			t.Run(st.name+"/"+r.name, func(t *testing.T) {
				t.Parallel()
				o := build(t, s, st.name)
				before := o.Snapshot()
				at := t0.Add(time.Hour)
				events := s.Apply(o, r.reply, at)

				want, ok := findTransition(st.name, r.name)
				if !ok {
					if len(events) != 0 {
						t.Errorf("events = %v, want none", eventNames(events))
					}
					if got := o.Snapshot(); !reflect.DeepEqual(got, before) {
						t.Errorf("order changed:\n got %+v\nwant %+v", got, before)
					}
					return
				}
				if got := eventNames(events); !slices.Equal(got, want.events) {
					t.Errorf("events = %v, want %v", got, want.events)
				}
				if o.State() != want.state {
					t.Errorf("state = %s, want %s", o.State(), want.state)
				}
				if o.CancellationReason() != want.reason {
					t.Errorf("reason = %q, want %q", o.CancellationReason(), want.reason)
				}
				if o.Revision() != before.Revision+1 {
					t.Errorf("revision = %d, want %d", o.Revision(), before.Revision+1)
				}
				added := timelineTypes(o)[len(before.Timeline):]
				if !slices.Equal(added, want.timeline) {
					t.Errorf("timeline added %v, want %v", added, want.timeline)
				}
				for _, e := range o.Timeline()[len(before.Timeline):] {
					if !e.At.Equal(at) {
						t.Errorf("timeline entry %s at %s, want %s", e.Type, e.At, at)
					}
				}
				for _, e := range events {
					if c, ok := e.(domain.Cancelled); ok {
						if !slices.Equal(c.Compensations, want.comps) {
							t.Errorf("compensations = %v, want %v", c.Compensations, want.comps)
						}
						if c.Reason != want.reason {
							t.Errorf("cancelled reason = %s, want %s", c.Reason, want.reason)
						}
					}
				}

				// The same reply again, as a redelivery or a resend would bring it.
				after := o.Snapshot()
				if again := s.Apply(o, r.reply, at.Add(time.Second)); len(again) != 0 {
					t.Errorf("duplicate reply published %v", eventNames(again))
				}
				if got := o.Snapshot(); !reflect.DeepEqual(got, after) {
					t.Errorf("duplicate reply changed the order")
				}
			})
		}
	}
}

func findTransition(from, reply string) (transition, bool) {
	for _, tr := range transitions {
		if tr.from == from && tr.reply == reply {
			return tr, true
		}
	}
	return transition{}, false
}

func TestTransitionTableNamesExist(t *testing.T) {
	t.Parallel()
	for _, tr := range transitions {
		found := false
		for _, st := range starts {
			found = found || st.name == tr.from
		}
		if !found {
			t.Errorf("transition from unknown start %q", tr.from)
		}
		_ = reply(tr.reply)
	}
}

func TestCustomerCancel(t *testing.T) {
	t.Parallel()
	s := newSaga(t)
	tests := []struct {
		from     string
		state    domain.State
		events   []string
		comps    []domain.Compensation
		timeline []domain.TimelineType
		err      error
	}{
		{from: "awaiting_stock", state: domain.StateCancelled, events: []string{"domain.Cancelled"},
			comps:    []domain.Compensation{domain.CompensateReleaseStock},
			timeline: []domain.TimelineType{domain.TimelineCancellationRequested, domain.TimelineCancelled}},
		{from: "awaiting_payment", state: domain.StateCancelled, events: []string{"domain.Cancelled"},
			comps:    []domain.Compensation{domain.CompensateReleaseStock},
			timeline: []domain.TimelineType{domain.TimelineCancellationRequested, domain.TimelineCancelled}},
		{from: "confirmed", state: domain.StateCancellationRequested, events: []string{"domain.CancellationRequested"},
			timeline: []domain.TimelineType{domain.TimelineCancellationRequested}},
		{from: "confirmed with shipment", state: domain.StateCancellationRequested, events: []string{"domain.CancellationRequested"},
			timeline: []domain.TimelineType{domain.TimelineCancellationRequested}},
		{from: "cancellation_requested", state: domain.StateCancellationRequested},
		{from: "shipped", state: domain.StateShipped, err: domain.ErrAlreadyShipped},
		{from: "delivered", state: domain.StateDelivered, err: domain.ErrAlreadyShipped},
		{from: "cancelled out of stock", state: domain.StateCancelled},
		{from: "cancelled payment timeout", state: domain.StateCancelled},
		{from: "cancelled undeliverable", state: domain.StateCancelled},
	}
	if len(tests) != len(starts) {
		t.Fatalf("%d cases for %d starts", len(tests), len(starts))
	}
	for _, tc := range tests {
		t.Run(tc.from, func(t *testing.T) {
			t.Parallel()
			o := build(t, s, tc.from)
			before := o.Snapshot()
			events, err := s.Cancel(o, t0.Add(time.Hour))
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if got := eventNames(events); !slices.Equal(got, tc.events) {
				t.Errorf("events = %v, want %v", got, tc.events)
			}
			if o.State() != tc.state {
				t.Errorf("state = %s, want %s", o.State(), tc.state)
			}
			if added := timelineTypes(o)[len(before.Timeline):]; !slices.Equal(added, tc.timeline) {
				t.Errorf("timeline added %v, want %v", added, tc.timeline)
			}
			if len(tc.events) == 0 && !reflect.DeepEqual(o.Snapshot(), before) {
				t.Errorf("order changed without events")
			}
			for _, e := range events {
				if c, ok := e.(domain.Cancelled); ok {
					if c.Reason != domain.ReasonCustomerRequest || !slices.Equal(c.Compensations, tc.comps) {
						t.Errorf("cancelled = %+v, want customer_request with %v", c, tc.comps)
					}
				}
			}
			// A second cancel (a retried request) changes nothing more.
			after := o.Snapshot()
			if again, _ := s.Cancel(o, t0.Add(2*time.Hour)); len(again) != 0 || !reflect.DeepEqual(o.Snapshot(), after) {
				t.Errorf("second cancel published %v or changed the order", eventNames(again))
			}
		})
	}
}

// Sequences that real brokers produce: answers after a timeout, both
// answers of a race, replies before the reply they follow.
func TestReorderedAndLateReplies(t *testing.T) {
	t.Parallel()
	s := newSaga(t)
	tests := []struct {
		name    string
		steps   []string
		state   domain.State
		reason  domain.Reason
		events  []string // every event published along the way, in order
		refunds int
	}{
		{name: "authorization after timeout is refunded once",
			steps: []string{"stock reserved", "payment timed out", "payment authorized", "payment authorized", "payment refunded", "payment refunded"},
			state: domain.StateCancelled, reason: domain.ReasonPaymentTimeout, refunds: 1,
			events: []string{"domain.Placed", "domain.PaymentRequested", "domain.PaymentTimeoutDue", "domain.Cancelled", "domain.RefundRequested"}},
		{name: "timeout after authorization is ignored",
			steps:  []string{"stock reserved", "payment authorized", "payment timed out"},
			state:  domain.StateConfirmed,
			events: []string{"domain.Placed", "domain.PaymentRequested", "domain.PaymentTimeoutDue", "domain.Confirmed"}},
		{name: "decline after timeout is ignored",
			steps: []string{"stock reserved", "payment timed out", "payment declined"},
			state: domain.StateCancelled, reason: domain.ReasonPaymentTimeout,
			events: []string{"domain.Placed", "domain.PaymentRequested", "domain.PaymentTimeoutDue", "domain.Cancelled"}},
		{name: "authorization after customer cancel is refunded once",
			steps: []string{"stock reserved", "cancel", "payment authorized", "cancel", "payment authorized"},
			state: domain.StateCancelled, reason: domain.ReasonCustomerRequest, refunds: 1,
			events: []string{"domain.Placed", "domain.PaymentRequested", "domain.PaymentTimeoutDue", "domain.Cancelled", "domain.RefundRequested"}},
		{name: "stock reserved after customer cancel is ignored",
			steps: []string{"cancel", "stock reserved", "stock reservation failed"},
			state: domain.StateCancelled, reason: domain.ReasonCustomerRequest,
			events: []string{"domain.Placed", "domain.Cancelled"}},
		{name: "cancel loses the race with dispatch",
			steps: []string{"stock reserved", "payment authorized", "shipment created", "cancel", "shipment dispatched", "shipment cancelled", "shipment delivered"},
			state: domain.StateDelivered,
			events: []string{"domain.Placed", "domain.PaymentRequested", "domain.PaymentTimeoutDue", "domain.Confirmed",
				"domain.CancellationRequested", "domain.Shipped", "domain.Delivered", "domain.Completed"}},
		{name: "cancel wins the race with dispatch",
			steps: []string{"stock reserved", "payment authorized", "shipment created", "cancel", "shipment cancelled", "shipment dispatched", "shipment failed"},
			state: domain.StateCancelled, reason: domain.ReasonCustomerRequest, refunds: 1,
			events: []string{"domain.Placed", "domain.PaymentRequested", "domain.PaymentTimeoutDue", "domain.Confirmed",
				"domain.CancellationRequested", "domain.Cancelled", "domain.RefundRequested"}},
		{name: "undeliverable refunds once however often it fails",
			steps: []string{"stock reserved", "payment authorized", "shipment dispatched", "shipment failed", "shipment failed", "shipment delivered", "payment authorized"},
			state: domain.StateCancelled, reason: domain.ReasonUndeliverable, refunds: 1,
			events: []string{"domain.Placed", "domain.PaymentRequested", "domain.PaymentTimeoutDue", "domain.Confirmed",
				"domain.Shipped", "domain.Cancelled", "domain.RefundRequested"}},
		{name: "delivery after failure is ignored, failure after delivery too",
			steps: []string{"stock reserved", "payment authorized", "shipment dispatched", "shipment delivered", "shipment failed"},
			state: domain.StateDelivered,
			events: []string{"domain.Placed", "domain.PaymentRequested", "domain.PaymentTimeoutDue", "domain.Confirmed",
				"domain.Shipped", "domain.Delivered", "domain.Completed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, events, err := s.Place(placement(), t0)
			if err != nil {
				t.Fatal(err)
			}
			for i, step := range tc.steps {
				at := t0.Add(time.Duration(i+1) * time.Second)
				if step == "cancel" {
					ev, err := s.Cancel(o, at)
					if err != nil {
						t.Fatalf("cancel: %v", err)
					}
					events = append(events, ev...)
					continue
				}
				events = append(events, s.Apply(o, reply(step), at)...)
			}
			if got := eventNames(events); !slices.Equal(got, tc.events) {
				t.Errorf("events =\n %v\nwant\n %v", got, tc.events)
			}
			if o.State() != tc.state || o.CancellationReason() != tc.reason {
				t.Errorf("state = %s (%q), want %s (%q)", o.State(), o.CancellationReason(), tc.state, tc.reason)
			}
			refunds := 0
			for _, e := range events {
				if r, ok := e.(domain.RefundRequested); ok {
					refunds++
					if r.PaymentID != paymentID || r.Amount != eur(3000) || r.Reason != tc.reason {
						t.Errorf("refund request = %+v", r)
					}
				}
			}
			if refunds != tc.refunds {
				t.Errorf("refund requests = %d, want %d", refunds, tc.refunds)
			}
		})
	}
}

// TestRandomReplySequences throws many random sequences of replies and
// cancellations at an order and checks the saga's invariants after each.
func TestRandomReplySequences(t *testing.T) {
	t.Parallel()
	s := newSaga(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 2000 {
		o, _, err := s.Place(placement(), t0)
		if err != nil {
			t.Fatal(err)
		}
		var cancels, refunds, confirms, completes int
		for i := range 1 + rng.IntN(30) {
			at := t0.Add(time.Duration(i+1) * time.Second)
			before := o.Snapshot()
			var events []domain.Event
			if rng.IntN(len(replies)+1) == 0 {
				events, _ = s.Cancel(o, at)
			} else {
				events = s.Apply(o, replies[rng.IntN(len(replies))].reply, at)
			}
			if isFinal(before.State) && o.State() != before.State {
				t.Fatalf("run %d: left final state %s for %s", run, before.State, o.State())
			}
			if len(events) > 0 && o.Revision() != before.Revision+1 {
				t.Fatalf("run %d: events without a change", run)
			}
			if o.Revision() != before.Revision && len(o.Timeline()) == len(before.Timeline) {
				t.Fatalf("run %d: change without a timeline entry", run)
			}
			for _, e := range events {
				switch e := e.(type) {
				case domain.Cancelled:
					cancels++
				case domain.RefundRequested:
					refunds++
					if e.PaymentID == "" {
						t.Fatalf("run %d: refund without a payment", run)
					}
				case domain.Confirmed:
					confirms++
				case domain.Completed:
					completes++
				}
			}
		}
		if cancels > 1 || refunds > 1 || confirms > 1 || completes > 1 || (cancels == 1 && completes == 1) {
			t.Fatalf("run %d: cancels %d refunds %d confirms %d completes %d", run, cancels, refunds, confirms, completes)
		}
		if o.Payment().ID != "" && o.State() == domain.StateCancelled && !o.RefundRequested() {
			t.Fatalf("run %d: cancelled order keeps its payment", run)
		}
		if (o.State() == domain.StateCancelled) != (o.CancellationReason() != "") {
			t.Fatalf("run %d: state %s with reason %q", run, o.State(), o.CancellationReason())
		}
	}
}

func isFinal(s domain.State) bool { return s == domain.StateDelivered || s == domain.StateCancelled }

func TestPublicStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		state domain.State
		want  domain.Status
	}{
		{domain.StateAwaitingStock, domain.StatusPending},
		{domain.StateAwaitingPayment, domain.StatusPending},
		{domain.StateConfirmed, domain.StatusConfirmed},
		{domain.StateCancellationRequested, domain.StatusConfirmed},
		{domain.StateShipped, domain.StatusShipped},
		{domain.StateDelivered, domain.StatusDelivered},
		{domain.StateCancelled, domain.StatusCancelled},
	}
	for _, tc := range tests {
		if got := tc.state.Status(); got != tc.want {
			t.Errorf("%s.Status() = %s, want %s", tc.state, got, tc.want)
		}
	}
}

func TestPaymentRequestCarriesTokenAndDeadline(t *testing.T) {
	t.Parallel()
	s := newSaga(t)
	o, _, _ := s.Place(placement(), t0)
	events := s.Apply(o, domain.StockReserved{}, t0.Add(time.Second))
	req, ok := events[0].(domain.PaymentRequested)
	if !ok {
		t.Fatalf("first event %T, want PaymentRequested", events[0])
	}
	wantDeadline := t0.Add(time.Second + timeout)
	if req.PaymentToken != "tok_ok" || req.Amount != eur(3000) || !req.ExpiresAt.Equal(wantDeadline) {
		t.Errorf("payment request = %+v", req)
	}
	if due := events[1].(domain.PaymentTimeoutDue); !due.ExpiresAt.Equal(wantDeadline) {
		t.Errorf("timeout due at %s, want %s", due.ExpiresAt, wantDeadline)
	}
	if o.PaymentToken() != "" {
		t.Errorf("payment token kept after use")
	}
	if !o.PaymentDeadline().Equal(wantDeadline) {
		t.Errorf("deadline = %s, want %s", o.PaymentDeadline(), wantDeadline)
	}
}

func TestPlaceRejectsInvalidCheckouts(t *testing.T) {
	t.Parallel()
	s := newSaga(t)
	tests := []struct {
		name   string
		modify func(p *domain.Placement)
	}{
		{"bad order id", func(p *domain.Placement) { p.ID = "42" }},
		{"upper-case order id", func(p *domain.Placement) { p.ID = "0190A1B2-0000-7000-8000-000000000001" }},
		{"bad user id", func(p *domain.Placement) { p.UserID = "" }},
		{"no lines", func(p *domain.Placement) { p.Lines = nil; p.Total = eur(0) }},
		{"zero quantity", func(p *domain.Placement) { p.Lines[1].Quantity = 0; p.Total = eur(2500) }},
		{"negative quantity", func(p *domain.Placement) { p.Lines[1].Quantity = -1; p.Total = eur(2000) }},
		{"negative price", func(p *domain.Placement) { p.Lines[1].UnitPrice = eur(-500); p.Total = eur(2000) }},
		{"wrong total", func(p *domain.Placement) { p.Total = eur(2999) }},
		{"mixed currency", func(p *domain.Placement) { p.Lines[1].UnitPrice.Currency = "USD" }},
		{"bad currency", func(p *domain.Placement) { p.Total.Currency = "eur" }},
		{"duplicate product", func(p *domain.Placement) { p.Lines[1].ProductID = productA }},
		{"absurd amount", func(p *domain.Placement) {
			p.Lines[0].Quantity = 1 << 30
			p.Lines[0].UnitPrice = eur(1 << 40)
		}},
		{"no address", func(p *domain.Placement) { p.ShippingAddress = domain.Address{} }},
		{"no token", func(p *domain.Placement) { p.PaymentToken = "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := placement()
			tc.modify(&p)
			if _, _, err := s.Place(p, t0); !errors.Is(err, domain.ErrInvalidOrder) {
				t.Errorf("err = %v, want ErrInvalidOrder", err)
			}
		})
	}
}

func TestFromDatabaseRoundTripAndRefusals(t *testing.T) {
	t.Parallel()
	s := newSaga(t)
	for _, st := range starts {
		o := build(t, s, st.name)
		back, err := domain.FromDatabase(o.Snapshot())
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if !reflect.DeepEqual(back.Snapshot(), o.Snapshot()) {
			t.Errorf("%s: round trip changed the order", st.name)
		}
	}
	bad := []func(*domain.Snapshot){
		func(s *domain.Snapshot) { s.State = "lost" },
		func(s *domain.Snapshot) { s.Reason = domain.ReasonOutOfStock },
		func(s *domain.Snapshot) { s.Timeline = nil },
		func(s *domain.Snapshot) { s.Revision = 0 },
		func(s *domain.Snapshot) { s.Lines = nil },
		func(s *domain.Snapshot) { s.State = domain.StateConfirmed },
	}
	for i, modify := range bad {
		o := build(t, s, "awaiting_stock")
		snap := o.Snapshot()
		modify(&snap)
		if _, err := domain.FromDatabase(snap); err == nil {
			t.Errorf("bad snapshot %d accepted", i)
		}
	}
}

func TestNewSagaNeedsAPositiveTimeout(t *testing.T) {
	t.Parallel()
	if _, err := domain.NewSaga(0); err == nil {
		t.Error("zero payment timeout accepted")
	}
}
