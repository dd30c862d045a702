package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shopmesh/shopmesh/services/user/internal/domain"
)

// LoginInput is a login request.
type LoginInput struct {
	Email, Password string
}

// Token is an issued access token.
type Token struct {
	Token     string
	ExpiresAt time.Time
	UserID    domain.UserID
	Role      domain.Role
}

// Login checks the credentials and issues a token. A wrong password and an
// unknown email give the same error after the same work (a dummy hash is
// verified for unknown emails); a deactivated account is reported only to
// someone who knows its password.
func (s *Service) Login(ctx context.Context, in LoginInput) (Token, error) {
	var missing []domain.FieldError
	if in.Email == "" {
		missing = append(missing, domain.FieldError{Field: "email", Message: "is required"})
	}
	if in.Password == "" {
		missing = append(missing, domain.FieldError{Field: "password", Message: "is required"})
	}
	if len(missing) > 0 {
		return Token{}, &domain.ValidationError{Fields: missing}
	}
	email, err := domain.ParseEmail(in.Email)
	if err != nil {
		// No account can have a malformed email: answer as for unknown.
		s.hasher.VerifyNone(in.Password)
		return Token{}, domain.ErrInvalidCredentials
	}
	u, err := s.repo.ByEmail(ctx, email)
	if errors.Is(err, domain.ErrNotFound) {
		s.hasher.VerifyNone(in.Password)
		return Token{}, domain.ErrInvalidCredentials
	}
	if err != nil {
		return Token{}, fmt.Errorf("log in: %w", err)
	}
	if !s.hasher.Verify(u.PasswordHash(), in.Password) {
		return Token{}, domain.ErrInvalidCredentials
	}
	if err := u.CheckLogin(); err != nil {
		return Token{}, err
	}
	tok, exp, err := s.tokens.Issue(u.ID().String(), u.Role().String(), s.now())
	if err != nil {
		return Token{}, fmt.Errorf("log in %s: %w", u.ID(), err)
	}
	return Token{Token: tok, ExpiresAt: exp, UserID: u.ID(), Role: u.Role()}, nil
}
