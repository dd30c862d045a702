package provider_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/services/payment/internal/app"
	"github.com/shopmesh/shopmesh/services/payment/internal/domain"
	"github.com/shopmesh/shopmesh/services/payment/internal/provider"
)

func TestSimulatorAnswersByToken(t *testing.T) {
	t.Parallel()
	sim, err := provider.NewSimulator(0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := func(token string) app.AuthorizeRequest {
		return app.AuthorizeRequest{IdempotencyKey: "order:1:authorize", Amount: domain.Money{AmountMinor: 1, Currency: "EUR"}, Token: token}
	}
	ok, err := sim.Authorize(ctx, req(provider.TokenOK))
	if err != nil || !ok.Approved || ok.Reference == "" {
		t.Errorf("tok_ok = %+v, %v; want approved with a reference", ok, err)
	}
	again, _ := sim.Authorize(ctx, req(provider.TokenOK))
	if again.Reference != ok.Reference {
		t.Errorf("repeated call answered %q, want the first reference %q", again.Reference, ok.Reference)
	}
	if d, err := sim.Authorize(ctx, req(provider.TokenDecline)); err != nil || d.Approved || d.DeclineCode != provider.DeclineCardDeclined {
		t.Errorf("tok_decline = %+v, %v", d, err)
	}
	if d, err := sim.Authorize(ctx, req("tok_unknown")); err != nil || d.Approved || d.DeclineCode != provider.DeclineInvalidToken {
		t.Errorf("unknown token = %+v, %v", d, err)
	}
	if _, err := sim.Authorize(ctx, req(provider.TokenTimeout)); !errors.Is(err, app.ErrNoAnswer) {
		t.Errorf("tok_timeout: err = %v, want ErrNoAnswer", err)
	}
	ref, err := sim.Refund(ctx, app.RefundRequest{IdempotencyKey: "payment:1:refund", AuthorizationReference: ok.Reference})
	if err != nil || ref == "" {
		t.Errorf("Refund = %q, %v", ref, err)
	}
}

func TestSimulatorLatencyHonoursCancellation(t *testing.T) {
	t.Parallel()
	sim, err := provider.NewSimulator(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sim.Authorize(ctx, app.AuthorizeRequest{Token: provider.TokenOK}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if _, err := provider.NewSimulator(-time.Second); err == nil {
		t.Error("negative latency accepted")
	}
}
