package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/services/payment/internal/domain"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func eur(minor int64) domain.Money { return domain.Money{AmountMinor: minor, Currency: "EUR"} }

func newPayment(t *testing.T) *domain.Payment {
	t.Helper()
	p, err := domain.NewPayment("pay-1", "order-1", "user-1", eur(1250), t0)
	if err != nil {
		t.Fatalf("NewPayment: %v", err)
	}
	return p
}

func TestNewPaymentRejectsInvalidInput(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		id, order, user string
		amount          domain.Money
	}{
		"no id":            {"", "o", "u", eur(1)},
		"no order":         {"p", "", "u", eur(1)},
		"no user":          {"p", "o", "", eur(1)},
		"negative amount":  {"p", "o", "u", eur(-1)},
		"invalid currency": {"p", "o", "u", domain.Money{AmountMinor: 1, Currency: "eur"}},
	}
	for name, c := range cases {
		if _, err := domain.NewPayment(c.id, c.order, c.user, c.amount, t0); err == nil {
			t.Errorf("%s: NewPayment succeeded, want an error", name)
		}
	}
}

func TestPaymentIsDecidedOnce(t *testing.T) {
	t.Parallel()
	p := newPayment(t)
	if p.Status() != domain.StatusPending {
		t.Fatalf("status = %s, want pending", p.Status())
	}
	if err := p.Authorize("ref-1", "evt-1", t0); err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	if err := p.Authorize("ref-2", "evt-2", t0); !errors.Is(err, domain.ErrDecided) {
		t.Errorf("second Authorize: err = %v, want ErrDecided", err)
	}
	if err := p.Decline("card_declined", "evt-3", t0); !errors.Is(err, domain.ErrDecided) {
		t.Errorf("Decline after Authorize: err = %v, want ErrDecided", err)
	}
	if p.ProviderReference() != "ref-1" || p.OutcomeEventID() != "evt-1" {
		t.Errorf("reference %q, event %q; want the first authorization's", p.ProviderReference(), p.OutcomeEventID())
	}
}

func TestRefundOnlyOnceAndOnlyWhenCaptured(t *testing.T) {
	t.Parallel()
	p := newPayment(t)
	if err := p.CanRefund(eur(1250)); !errors.Is(err, domain.ErrNotCaptured) {
		t.Errorf("refund of a pending payment: err = %v, want ErrNotCaptured", err)
	}
	declined := newPayment(t)
	if err := declined.Decline("card_declined", "evt", t0); err != nil {
		t.Fatal(err)
	}
	if err := declined.CanRefund(eur(1250)); !errors.Is(err, domain.ErrNotCaptured) {
		t.Errorf("refund of a declined payment: err = %v, want ErrNotCaptured", err)
	}

	if err := p.Authorize("ref", "evt", t0); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]domain.Money{"more than captured": eur(1251), "other currency": {AmountMinor: 1250, Currency: "USD"}} {
		if err := p.CanRefund(m); !errors.Is(err, domain.ErrRefundAmount) {
			t.Errorf("%s: err = %v, want ErrRefundAmount", name, err)
		}
	}
	r := domain.Refund{ID: "refund-1", Amount: eur(1250), Reason: "customer_request", ProviderReference: "rr", At: t0}
	if err := p.MarkRefunded(r); err != nil {
		t.Fatalf("MarkRefunded: %v", err)
	}
	if p.Status() != domain.StatusRefunded {
		t.Errorf("status = %s, want refunded", p.Status())
	}
	r.ID = "refund-2"
	if err := p.MarkRefunded(r); !errors.Is(err, domain.ErrAlreadyRefunded) {
		t.Errorf("second refund: err = %v, want ErrAlreadyRefunded", err)
	}
	if got, _ := p.Refund(); got.ID != "refund-1" {
		t.Errorf("refund id = %s, want refund-1", got.ID)
	}
}

func TestRecordAttemptIgnoresARequestSeenBefore(t *testing.T) {
	t.Parallel()
	p := newPayment(t)
	p.RecordAttempt("req-1", domain.OutcomeNoAnswer, t0)
	p.RecordAttempt("req-1", domain.OutcomeNoAnswer, t0.Add(time.Second))
	p.RecordAttempt("req-2", domain.OutcomeNoAnswer, t0.Add(time.Second))
	if got := len(p.Attempts()); got != 2 {
		t.Errorf("attempts = %d, want 2", got)
	}
}

func TestMatchesRejectsAnotherAmountOrCustomer(t *testing.T) {
	t.Parallel()
	p := newPayment(t)
	if err := p.Matches("user-1", eur(1250)); err != nil {
		t.Errorf("same request: %v", err)
	}
	if err := p.Matches("user-2", eur(1250)); !errors.Is(err, domain.ErrRequestMismatch) {
		t.Errorf("other user: err = %v, want ErrRequestMismatch", err)
	}
	if err := p.Matches("user-1", eur(1)); !errors.Is(err, domain.ErrRequestMismatch) {
		t.Errorf("other amount: err = %v, want ErrRequestMismatch", err)
	}
}

func TestFromDatabaseRejectsUnreachableStates(t *testing.T) {
	t.Parallel()
	base := domain.Stored{ID: "p", OrderID: "o", UserID: "u", Amount: eur(1), CreatedAt: t0, UpdatedAt: t0}
	cases := map[string]func(s *domain.Stored){
		"unknown status":          func(s *domain.Stored) { s.Status = "lost" },
		"decided without event":   func(s *domain.Stored) { s.Status = domain.StatusAuthorized },
		"refunded without refund": func(s *domain.Stored) { s.Status, s.OutcomeEventID = domain.StatusRefunded, "e" },
		"refund of authorized status": func(s *domain.Stored) {
			s.Status, s.OutcomeEventID, s.Refund = domain.StatusAuthorized, "e", &domain.Refund{}
		},
	}
	for name, mod := range cases {
		s := base
		s.Status = domain.StatusPending
		mod(&s)
		if _, err := domain.FromDatabase(s); err == nil {
			t.Errorf("%s: FromDatabase succeeded, want an error", name)
		}
	}
	s := base
	s.Status = domain.StatusPending
	if _, err := domain.FromDatabase(s); err != nil {
		t.Errorf("pending payment: %v", err)
	}
}
