// Package provider holds the simulated payment provider, the default
// implementation of app.Provider. It is deterministic: the token alone
// decides the answer, and references derive from the idempotency key, so a
// repeated call answers exactly as the first. It must not hold payment rules.
package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/shopmesh/shopmesh/internal/wait"
	"github.com/shopmesh/shopmesh/services/payment/internal/app"
)

// Tokens the simulator understands; any other token is declined as
// DeclineInvalidToken.
const (
	TokenOK      = "tok_ok"
	TokenDecline = "tok_decline"
	TokenTimeout = "tok_timeout"
)

// Decline codes.
const (
	DeclineCardDeclined = "card_declined"
	DeclineInvalidToken = "invalid_token"
)

// Simulator is the simulated provider.
type Simulator struct {
	latency time.Duration
}

// NewSimulator returns a simulator that answers after latency.
func NewSimulator(latency time.Duration) (*Simulator, error) {
	if latency < 0 {
		return nil, fmt.Errorf("provider latency %s is negative", latency)
	}
	return &Simulator{latency: latency}, nil
}

// Authorize approves TokenOK, declines TokenDecline and unknown tokens, and
// never answers TokenTimeout (it reports app.ErrNoAnswer after the latency
// rather than blocking the caller's transaction).
func (s *Simulator) Authorize(ctx context.Context, req app.AuthorizeRequest) (app.Authorization, error) {
	if err := s.respond(ctx); err != nil {
		return app.Authorization{}, err
	}
	switch req.Token {
	case TokenOK:
		return app.Authorization{Approved: true, Reference: reference("auth", req.IdempotencyKey)}, nil
	case TokenDecline:
		return app.Authorization{DeclineCode: DeclineCardDeclined}, nil
	case TokenTimeout:
		return app.Authorization{}, app.ErrNoAnswer
	default:
		return app.Authorization{DeclineCode: DeclineInvalidToken}, nil
	}
}

// Refund refunds any authorization it is given.
func (s *Simulator) Refund(ctx context.Context, req app.RefundRequest) (string, error) {
	if err := s.respond(ctx); err != nil {
		return "", err
	}
	if req.AuthorizationReference == "" {
		return "", fmt.Errorf("refund %s: no authorization reference", req.IdempotencyKey)
	}
	return reference("refund", req.IdempotencyKey), nil
}

// respond waits the provider's simulated latency.
func (s *Simulator) respond(ctx context.Context) error { return wait.Sleep(ctx, s.latency) }

// reference derives a stable provider reference from an idempotency key.
func reference(kind, key string) string {
	sum := sha256.Sum256([]byte(key))
	return "sim_" + kind + "_" + hex.EncodeToString(sum[:8])
}
