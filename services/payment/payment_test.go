package payment_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/tests/servicetest"
)

type paymentView struct {
	OrderID       string           `json:"order_id"`
	PaymentID     string           `json:"payment_id"`
	Status        string           `json:"status"`
	Amount        contracts.Money  `json:"amount"`
	DeclineReason string           `json:"decline_reason"`
	Refunds       []map[string]any `json:"refunds"`
}

func paymentRequested(orderID, userID, token string) contracts.OrderPaymentRequestedV1 {
	return contracts.OrderPaymentRequestedV1{OrderID: orderID, UserID: userID, Amount: eur(4999), PaymentToken: token,
		ExpiresAt: time.Now().Add(time.Minute).UTC()}
}

func TestAuthorizationIsIdempotentPerOrder(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	orderID, userID := newID(), newID()

	// The same request delivered twice is applied once.
	reqID := newID()
	h.Publish(reqID, contracts.TypeOrderPaymentRequestedV1, orderID, paymentRequested(orderID, userID, "tok_ok"))
	h.Publish(reqID, contracts.TypeOrderPaymentRequestedV1, orderID, paymentRequested(orderID, userID, "tok_ok"))
	h.Eventually("the authorization", func() bool { return len(h.Events(contracts.TypePaymentAuthorizedV1)) == 1 })
	h.Eventually("the duplicate to be absorbed", func() bool { return h.Duplicates() == 1 })

	var p paymentView
	path := fmtPath("/api/v1/orders/%s/payment", orderID)
	if status, _ := h.get(http.MethodGet, path, userID, &p); status != http.StatusOK {
		t.Fatalf("GET %s: %d, want 200", path, status)
	}
	if p.OrderID != orderID || p.Status != "authorized" || p.Amount != eur(4999) || len(p.Refunds) != 0 {
		t.Errorf("payment = %+v, want authorized 4999 EUR without refunds", p)
	}
	auth := published[contracts.PaymentAuthorizedV1](h, contracts.TypePaymentAuthorizedV1)
	if len(auth) != 1 || auth[0].OrderID != orderID || auth[0].UserID != userID || auth[0].PaymentID != p.PaymentID || auth[0].Amount != eur(4999) {
		t.Errorf("authorized events = %+v", auth)
	}

	// A new request for the same order re-announces the same event (same id)
	// and never authorizes again.
	h.Publish(newID(), contracts.TypeOrderPaymentRequestedV1, orderID, paymentRequested(orderID, userID, "tok_ok"))
	h.Eventually("the re-announcement", func() bool { return len(h.Events(contracts.TypePaymentAuthorizedV1)) == 2 })
	msgs := h.Events(contracts.TypePaymentAuthorizedV1)
	if msgs[0].ID == "" || msgs[1].ID != msgs[0].ID || string(msgs[1].Payload) != string(msgs[0].Payload) {
		t.Errorf("re-announced %s %s, want the first event %s %s", msgs[1].ID, msgs[1].Payload, msgs[0].ID, msgs[0].Payload)
	}
	if n := h.Query(`SELECT count(*) FROM payments WHERE order_id = $1`, orderID); n != 1 {
		t.Errorf("payments = %d, want 1", n)
	}
	if n := h.Query(`SELECT count(*) FROM payment_attempts`); n != 2 {
		t.Errorf("attempts = %d, want 2", n)
	}
}

func TestPaymentAPI(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	orderID, userID := newID(), newID()
	h.Publish(newID(), contracts.TypeOrderPaymentRequestedV1, orderID, paymentRequested(orderID, userID, "tok_ok"))
	path := fmtPath("/api/v1/orders/%s/payment", orderID)
	h.Eventually("the payment", func() bool { s, _ := h.get(http.MethodGet, path, userID, nil); return s == http.StatusOK })

	cases := []struct {
		name, method, path, user string
		want                     int
	}{
		{"another customer's payment", http.MethodGet, path, newID(), http.StatusNotFound},
		{"no identity", http.MethodGet, path, "", http.StatusUnauthorized},
		{"unknown order", http.MethodGet, fmtPath("/api/v1/orders/%s/payment", newID()), userID, http.StatusNotFound},
		{"malformed id", http.MethodGet, "/api/v1/orders/not-a-uuid/payment", userID, http.StatusBadRequest},
		{"id with braces", http.MethodGet, "/api/v1/orders/%7B" + orderID + "%7D/payment", userID, http.StatusBadRequest},
		{"wrong method", http.MethodPost, path, userID, http.StatusMethodNotAllowed},
		{"unknown route", http.MethodGet, "/api/v1/payments", userID, http.StatusNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.For(t).ExpectProblem(c.method, c.path, servicetest.AsCustomer(c.user), c.want)
		})
	}
}

func TestDeclinesAndUnansweredPayments(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	userID := newID()
	declined, unknown, timeout := newID(), newID(), newID()
	h.Publish(newID(), contracts.TypeOrderPaymentRequestedV1, declined, paymentRequested(declined, userID, "tok_decline"))
	h.Publish(newID(), contracts.TypeOrderPaymentRequestedV1, unknown, paymentRequested(unknown, userID, "tok_whatever"))
	h.Publish(newID(), contracts.TypeOrderPaymentRequestedV1, timeout, paymentRequested(timeout, userID, "tok_timeout"))

	h.Eventually("two declines", func() bool { return len(h.Events(contracts.TypePaymentDeclinedV1)) == 2 })
	reasons := map[string]string{}
	for _, e := range published[contracts.PaymentDeclinedV1](h, contracts.TypePaymentDeclinedV1) {
		reasons[e.OrderID] = e.Reason
	}
	if reasons[declined] != "card_declined" || reasons[unknown] != "invalid_token" {
		t.Errorf("decline reasons = %v, want card_declined and invalid_token", reasons)
	}
	var p paymentView
	h.Eventually("the unanswered payment", func() bool {
		s, _ := h.get(http.MethodGet, fmtPath("/api/v1/orders/%s/payment", timeout), userID, &p)
		return s == http.StatusOK
	})
	if p.Status != "pending" {
		t.Errorf("unanswered payment status = %s, want pending", p.Status)
	}
	if n := h.Query(`SELECT count(*) FROM payment_attempts a JOIN payments p ON p.id = a.payment_id
		WHERE p.order_id = $1 AND a.outcome = 'no_answer'`, timeout); n != 1 {
		t.Errorf("unanswered attempts = %d, want 1", n)
	}
	// Everything the service ever published is in its outbox: exactly the
	// two declines, nothing for the unanswered payment.
	if n := h.Query(`SELECT count(*) FROM watermill_outbox`); n != 2 {
		t.Errorf("outbox holds %d events, want 2", n)
	}
	if s, _ := h.get(http.MethodGet, fmtPath("/api/v1/orders/%s/payment", declined), userID, &p); s != http.StatusOK || p.Status != "declined" || p.DeclineReason != "card_declined" {
		t.Errorf("declined payment: %d %+v", s, p)
	}
}

func TestRefundHappensOncePerCapturedPayment(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	orderID, userID := newID(), newID()
	h.Publish(newID(), contracts.TypeOrderPaymentRequestedV1, orderID, paymentRequested(orderID, userID, "tok_ok"))
	h.Eventually("the authorization", func() bool { return len(h.Events(contracts.TypePaymentAuthorizedV1)) == 1 })
	paymentID := published[contracts.PaymentAuthorizedV1](h, contracts.TypePaymentAuthorizedV1)[0].PaymentID

	refund := contracts.OrderRefundRequestedV1{OrderID: orderID, UserID: userID, PaymentID: paymentID, Amount: eur(4999),
		Reason: contracts.ReasonCustomerRequest}
	first := newID()
	h.Publish(first, contracts.TypeOrderRefundRequestedV1, orderID, refund)
	h.Publish(first, contracts.TypeOrderRefundRequestedV1, orderID, refund)   // redelivered
	h.Publish(newID(), contracts.TypeOrderRefundRequestedV1, orderID, refund) // asked again
	h.Eventually("all three requests", func() bool {
		return h.Duplicates() == 1 && h.Query(`SELECT count(*) FROM refund_requests`) == 2
	})
	h.Eventually("the refund", func() bool { return len(h.Events(contracts.TypePaymentRefundedV1)) >= 1 })
	if n := h.Query(`SELECT count(*) FROM watermill_outbox WHERE metadata->>'type' = $1`, contracts.TypePaymentRefundedV1); n != 1 {
		t.Errorf("refund events in the outbox = %d, want 1", n)
	}
	refunded := published[contracts.PaymentRefundedV1](h, contracts.TypePaymentRefundedV1)
	if len(refunded) != 1 || refunded[0].PaymentID != paymentID || refunded[0].Amount != eur(4999) ||
		refunded[0].Reason != contracts.ReasonCustomerRequest || refunded[0].UserID != userID {
		t.Errorf("refunded events = %+v", refunded)
	}
	if n := h.Query(`SELECT count(*) FROM refund_requests WHERE outcome = 'already_refunded'`); n != 1 {
		t.Errorf("requests recorded as already refunded = %d, want 1", n)
	}
	var p paymentView
	if s, _ := h.get(http.MethodGet, fmtPath("/api/v1/orders/%s/payment", orderID), userID, &p); s != http.StatusOK {
		t.Fatalf("GET payment: %d", s)
	}
	if p.Status != "refunded" || len(p.Refunds) != 1 || p.Refunds[0]["refund_id"] != refunded[0].RefundID {
		t.Errorf("payment = %+v, want refunded with the one refund", p)
	}

	// A refund for an order without a captured payment is a recorded no-op.
	noPayment := newID()
	h.Publish(newID(), contracts.TypeOrderRefundRequestedV1, noPayment, contracts.OrderRefundRequestedV1{
		OrderID: noPayment, UserID: userID, PaymentID: newID(), Amount: eur(1), Reason: contracts.ReasonPaymentTimeout})
	h.Eventually("the no-op", func() bool {
		return h.Query(`SELECT count(*) FROM refund_requests WHERE order_id = $1 AND outcome = 'no_payment'`, noPayment) == 1
	})
	if n := h.Query(`SELECT count(*) FROM watermill_outbox WHERE metadata->>'type' = $1`, contracts.TypePaymentRefundedV1); n != 1 {
		t.Errorf("refund events in the outbox = %d, want still 1", n)
	}
}
