package app_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/payment/internal/app"
	"github.com/shopmesh/shopmesh/services/payment/internal/domain"
)

// fakePayments is an in-memory store: an update that fails changes nothing.
type fakePayments struct {
	payments map[string]*domain.Payment
	events   []outbox.Event
	refunds  []domain.RefundRequest
}

func newFakePayments() *fakePayments { return &fakePayments{payments: map[string]*domain.Payment{}} }

func (f *fakePayments) Payment(_ context.Context, orderID string) (*domain.Payment, error) {
	p, ok := f.payments[orderID]
	if !ok {
		return nil, domain.ErrNotFound
	}
	return clone(p)
}

func (f *fakePayments) Update(_ context.Context, orderID string, fn app.UpdateFunc) error {
	var cur *domain.Payment
	if p, ok := f.payments[orderID]; ok {
		var err error
		if cur, err = clone(p); err != nil {
			return err
		}
	}
	next, events, err := fn(cur)
	if err != nil {
		return err
	}
	if next != nil {
		if f.payments[orderID], err = clone(next); err != nil {
			return err
		}
	}
	f.events = append(f.events, events...)
	return nil
}

func (f *fakePayments) RecordRefundRequest(_ context.Context, r domain.RefundRequest) error {
	f.refunds = append(f.refunds, r)
	return nil
}

// clone copies a payment through its stored form, as a database would.
func clone(p *domain.Payment) (*domain.Payment, error) {
	st := domain.Stored{ID: p.ID(), OrderID: p.OrderID(), UserID: p.UserID(), Amount: p.Amount(), Status: p.Status(),
		ProviderReference: p.ProviderReference(), DeclineReason: p.DeclineReason(), OutcomeEventID: p.OutcomeEventID(),
		DecidedAt: p.DecidedAt(), Attempts: p.Attempts(), CreatedAt: p.CreatedAt(), UpdatedAt: p.UpdatedAt()}
	if r, ok := p.Refund(); ok {
		st.Refund = &r
	}
	return domain.FromDatabase(st)
}

// fakeProvider answers from a script and counts calls.
type fakeProvider struct {
	answer     app.Authorization
	err        error
	authKeys   []string
	refundKeys []string
	refundErr  error
}

func (f *fakeProvider) Authorize(_ context.Context, req app.AuthorizeRequest) (app.Authorization, error) {
	f.authKeys = append(f.authKeys, req.IdempotencyKey)
	return f.answer, f.err
}

func (f *fakeProvider) Refund(_ context.Context, req app.RefundRequest) (string, error) {
	f.refundKeys = append(f.refundKeys, req.IdempotencyKey)
	if f.refundErr != nil {
		return "", f.refundErr
	}
	return "refund-ref", nil
}

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newService(store *fakePayments, provider *fakeProvider) *app.Service {
	n := 0
	return app.NewService(store, provider,
		app.WithClock(func() time.Time { return now }),
		app.WithIDs(func() string { n++; return fmt.Sprintf("id-%d", n) }))
}

func eur(minor int64) domain.Money { return domain.Money{AmountMinor: minor, Currency: "EUR"} }

func request(id string) app.RequestPayment {
	return app.RequestPayment{RequestID: id, OrderID: "order-1", UserID: "user-1", Amount: eur(1250), Token: "tok"}
}

func TestRequestPaymentAuthorizesOnceAndReannouncesTheSameEvent(t *testing.T) {
	t.Parallel()
	store, provider := newFakePayments(), &fakeProvider{answer: app.Authorization{Approved: true, Reference: "auth-ref"}}
	svc := newService(store, provider)
	ctx := context.Background()

	for _, req := range []string{"req-1", "req-2"} {
		if err := svc.RequestPayment(ctx, request(req)); err != nil {
			t.Fatalf("RequestPayment %s: %v", req, err)
		}
	}
	if len(provider.authKeys) != 1 {
		t.Errorf("provider asked %d times, want 1", len(provider.authKeys))
	}
	if len(store.events) != 2 {
		t.Fatalf("events = %d, want 2 (the outcome and its re-announcement)", len(store.events))
	}
	first, again := store.events[0], store.events[1]
	if first.Type != contracts.TypePaymentAuthorizedV1 {
		t.Errorf("event type = %s, want %s", first.Type, contracts.TypePaymentAuthorizedV1)
	}
	if first.ID == "" || again.ID != first.ID || again.OccurredAt != first.OccurredAt {
		t.Errorf("re-announcement id %q at %v, want the first event's id %q at %v", again.ID, again.OccurredAt, first.ID, first.OccurredAt)
	}
	payload := first.Payload.(contracts.PaymentAuthorizedV1)
	if payload.ProviderReference != "auth-ref" || payload.OrderID != "order-1" || payload.Amount.AmountMinor != 1250 {
		t.Errorf("payload = %+v", payload)
	}
	if again.Payload != first.Payload {
		t.Errorf("re-announced payload %+v, want %+v", again.Payload, first.Payload)
	}
	p := store.payments["order-1"]
	if p.Status() != domain.StatusAuthorized {
		t.Errorf("status = %s, want authorized", p.Status())
	}
	if got := len(p.Attempts()); got != 2 {
		t.Errorf("attempts = %d, want 2", got)
	}
}

func TestRequestPaymentDeclines(t *testing.T) {
	t.Parallel()
	store, provider := newFakePayments(), &fakeProvider{answer: app.Authorization{DeclineCode: "card_declined"}}
	svc := newService(store, provider)
	if err := svc.RequestPayment(context.Background(), request("req-1")); err != nil {
		t.Fatal(err)
	}
	if len(store.events) != 1 || store.events[0].Type != contracts.TypePaymentDeclinedV1 {
		t.Fatalf("events = %+v, want one decline", store.events)
	}
	if reason := store.events[0].Payload.(contracts.PaymentDeclinedV1).Reason; reason != "card_declined" {
		t.Errorf("reason = %q, want card_declined", reason)
	}
	provider.answer = app.Authorization{Approved: true, Reference: "late"}
	if err := svc.RequestPayment(context.Background(), request("req-2")); err != nil {
		t.Fatal(err)
	}
	if len(provider.authKeys) != 1 {
		t.Errorf("provider asked %d times, want 1: a declined payment is never retried", len(provider.authKeys))
	}
	if len(store.events) != 2 || store.events[1].Type != contracts.TypePaymentDeclinedV1 {
		t.Errorf("second request announced %+v, want the decline again", store.events[1:])
	}
}

func TestRequestPaymentWithoutAnswerStaysPendingAndPublishesNothing(t *testing.T) {
	t.Parallel()
	store, provider := newFakePayments(), &fakeProvider{err: app.ErrNoAnswer}
	svc := newService(store, provider)
	if err := svc.RequestPayment(context.Background(), request("req-1")); err != nil {
		t.Fatal(err)
	}
	if len(store.events) != 0 {
		t.Errorf("events = %+v, want none", store.events)
	}
	p := store.payments["order-1"]
	if p == nil || p.Status() != domain.StatusPending {
		t.Fatalf("payment = %+v, want a pending payment", p)
	}
	if a := p.Attempts(); len(a) != 1 || a[0].Outcome != domain.OutcomeNoAnswer {
		t.Errorf("attempts = %+v, want one without answer", a)
	}

	// Asked again, the provider is called with the same idempotency key.
	provider.err, provider.answer = nil, app.Authorization{Approved: true, Reference: "ref"}
	if err := svc.RequestPayment(context.Background(), request("req-2")); err != nil {
		t.Fatal(err)
	}
	if len(provider.authKeys) != 2 || provider.authKeys[0] != provider.authKeys[1] {
		t.Errorf("idempotency keys = %v, want the same key twice", provider.authKeys)
	}
	if len(store.events) != 1 || store.events[0].Type != contracts.TypePaymentAuthorizedV1 {
		t.Errorf("events = %+v, want one authorization", store.events)
	}
}

func TestRequestPaymentProviderFailureChangesNothing(t *testing.T) {
	t.Parallel()
	store, provider := newFakePayments(), &fakeProvider{err: errors.New("connection reset")}
	svc := newService(store, provider)
	if err := svc.RequestPayment(context.Background(), request("req-1")); err == nil {
		t.Fatal("RequestPayment succeeded, want the provider's error")
	}
	if len(store.payments) != 0 || len(store.events) != 0 {
		t.Errorf("store changed: %d payments, %d events", len(store.payments), len(store.events))
	}
}

func TestRequestPaymentRejectsAChangedRequest(t *testing.T) {
	t.Parallel()
	store, provider := newFakePayments(), &fakeProvider{answer: app.Authorization{Approved: true, Reference: "ref"}}
	svc := newService(store, provider)
	if err := svc.RequestPayment(context.Background(), request("req-1")); err != nil {
		t.Fatal(err)
	}
	changed := request("req-2")
	changed.Amount = eur(1)
	if err := svc.RequestPayment(context.Background(), changed); !errors.Is(err, domain.ErrRequestMismatch) {
		t.Errorf("err = %v, want ErrRequestMismatch", err)
	}
}

func refund(id string) app.RefundPayment {
	return app.RefundPayment{RequestID: id, OrderID: "order-1", Amount: eur(1250), Reason: "undeliverable"}
}

func TestRefundPaymentRefundsOnce(t *testing.T) {
	t.Parallel()
	store, provider := newFakePayments(), &fakeProvider{answer: app.Authorization{Approved: true, Reference: "ref"}}
	svc := newService(store, provider)
	ctx := context.Background()
	if err := svc.RequestPayment(ctx, request("req-1")); err != nil {
		t.Fatal(err)
	}
	store.events = nil

	cmd := refund("refund-req-1")
	cmd.PaymentID = store.payments["order-1"].ID()
	outcome, err := svc.RefundPayment(ctx, cmd)
	if err != nil || outcome != domain.RefundRefunded {
		t.Fatalf("first refund: outcome %q, err %v; want refunded", outcome, err)
	}
	cmd.RequestID = "refund-req-2"
	outcome, err = svc.RefundPayment(ctx, cmd)
	if err != nil || outcome != domain.RefundDuplicate {
		t.Fatalf("second refund: outcome %q, err %v; want already_refunded", outcome, err)
	}
	if len(provider.refundKeys) != 1 {
		t.Errorf("provider refunded %d times, want 1", len(provider.refundKeys))
	}
	if len(store.events) != 1 || store.events[0].Type != contracts.TypePaymentRefundedV1 {
		t.Fatalf("events = %+v, want one refund", store.events)
	}
	e := store.events[0].Payload.(contracts.PaymentRefundedV1)
	if e.PaymentID != cmd.PaymentID || e.Amount.AmountMinor != 1250 || e.Reason != contracts.ReasonUndeliverable || e.RefundID == "" {
		t.Errorf("payload = %+v", e)
	}
	if len(store.refunds) != 2 || store.refunds[0].Outcome != domain.RefundRefunded || store.refunds[1].Outcome != domain.RefundDuplicate {
		t.Errorf("recorded requests = %+v", store.refunds)
	}
	if p := store.payments["order-1"]; p.Status() != domain.StatusRefunded {
		t.Errorf("status = %s, want refunded", p.Status())
	}
}

func TestRefundWithoutCapturedPaymentIsARecordedNoOp(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		answer app.Authorization
		err    error
		want   domain.RefundOutcome
	}{
		"no payment": {want: domain.RefundNoPayment},
		"declined":   {answer: app.Authorization{DeclineCode: "card_declined"}, want: domain.RefundNotCaptured},
		"pending":    {err: app.ErrNoAnswer, want: domain.RefundNotCaptured},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			store, provider := newFakePayments(), &fakeProvider{answer: c.answer, err: c.err}
			svc := newService(store, provider)
			ctx := context.Background()
			if name != "no payment" {
				if err := svc.RequestPayment(ctx, request("req-1")); err != nil {
					t.Fatal(err)
				}
			}
			store.events = nil
			outcome, err := svc.RefundPayment(ctx, refund("refund-req"))
			if err != nil || outcome != c.want {
				t.Fatalf("outcome %q, err %v; want %q", outcome, err, c.want)
			}
			if len(store.events) != 0 || len(provider.refundKeys) != 0 {
				t.Errorf("events %+v, provider refunds %d; want none", store.events, len(provider.refundKeys))
			}
			if len(store.refunds) != 1 || store.refunds[0].Outcome != c.want {
				t.Errorf("recorded requests = %+v", store.refunds)
			}
		})
	}
}

func TestRefundOfMoreThanCapturedIsRejected(t *testing.T) {
	t.Parallel()
	store, provider := newFakePayments(), &fakeProvider{answer: app.Authorization{Approved: true, Reference: "ref"}}
	svc := newService(store, provider)
	ctx := context.Background()
	if err := svc.RequestPayment(ctx, request("req-1")); err != nil {
		t.Fatal(err)
	}
	cmd := refund("refund-req")
	cmd.Amount = eur(999999)
	if _, err := svc.RefundPayment(ctx, cmd); !errors.Is(err, domain.ErrRefundAmount) {
		t.Errorf("err = %v, want ErrRefundAmount", err)
	}
	if len(provider.refundKeys) != 0 {
		t.Errorf("provider refunded %d times, want 0", len(provider.refundKeys))
	}
}

func TestPaymentIsVisibleToItsOwnerOnly(t *testing.T) {
	t.Parallel()
	store, provider := newFakePayments(), &fakeProvider{answer: app.Authorization{Approved: true, Reference: "ref"}}
	svc := newService(store, provider)
	ctx := context.Background()
	if err := svc.RequestPayment(ctx, request("req-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Payment(ctx, "user-1", "order-1"); err != nil {
		t.Errorf("owner: %v", err)
	}
	if _, err := svc.Payment(ctx, "user-2", "order-1"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("other user: err = %v, want ErrNotFound", err)
	}
	if _, err := svc.Payment(ctx, "user-1", "order-2"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("unknown order: err = %v, want ErrNotFound", err)
	}
}
