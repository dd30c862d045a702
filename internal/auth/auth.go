// Package auth issues and verifies shopmesh access tokens: JWTs signed with
// HS256 under one shared secret, issued by the user service at login and
// verified by the gateway on every request.
//
// It knows nothing about accounts or HTTP; it must not grow either. Time is
// always passed in, so callers and tests control the clock.
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Roles a token can carry.
const (
	RoleCustomer = "customer"
	RoleAdmin    = "admin"
)

// Token issuer and audience; a token from anyone else is rejected.
const (
	IssuerName = "shopmesh"
	Audience   = "shopmesh-api"
)

// MinSecretLen is the shortest accepted signing secret in bytes (the HS256
// key should be at least as long as the hash output).
const MinSecretLen = 32

// maxTokenLen bounds the work done on attacker-supplied input; real tokens
// are a few hundred bytes.
const maxTokenLen = 4096

// ErrInvalidToken is wrapped by every error Verify returns.
var ErrInvalidToken = errors.New("invalid token")

// ErrTokenExpired is returned for an otherwise valid token past its expiry.
// It wraps ErrInvalidToken.
var ErrTokenExpired = fmt.Errorf("%w: expired", ErrInvalidToken)

// Claims are what a verified token says about its bearer.
type Claims struct {
	// UserID is the subject, the user service's account id.
	UserID string
	// Role is RoleCustomer or RoleAdmin.
	Role string
	// ExpiresAt is when the token stops being accepted.
	ExpiresAt time.Time
}

// ValidRole reports whether role is one a token may carry.
func ValidRole(role string) bool {
	return role == RoleCustomer || role == RoleAdmin
}

// tokenClaims is the JWT payload.
type tokenClaims struct {
	jwt.RegisteredClaims
	Role string `json:"role"`
}

// Issuer signs access tokens.
type Issuer struct {
	secret []byte
	ttl    time.Duration
}

// NewIssuer returns an Issuer signing with secret (at least MinSecretLen
// bytes) tokens valid for ttl.
func NewIssuer(secret []byte, ttl time.Duration) (*Issuer, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("token secret: %d bytes, need at least %d", len(secret), MinSecretLen)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("token ttl %s: must be positive", ttl)
	}
	return &Issuer{secret: append([]byte(nil), secret...), ttl: ttl}, nil
}

// Issue signs a token for userID with role, valid from now for the Issuer's
// ttl. expiresAt is the exact expiry written into the token (whole seconds).
func (i *Issuer) Issue(userID, role string, now time.Time) (token string, expiresAt time.Time, err error) {
	if userID == "" {
		return "", time.Time{}, errors.New("issue token: empty user id")
	}
	if !ValidRole(role) {
		return "", time.Time{}, fmt.Errorf("issue token: unknown role %q", role)
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", time.Time{}, fmt.Errorf("issue token: token id: %w", err)
	}
	issuedAt := now.UTC().Truncate(time.Second)
	expiresAt = now.Add(i.ttl).UTC().Truncate(time.Second)
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    IssuerName,
			Subject:   userID,
			Audience:  jwt.ClaimStrings{Audience},
			ExpiresAt: jwt.NewNumericDate(expiresAt),
			IssuedAt:  jwt.NewNumericDate(issuedAt),
			ID:        hex.EncodeToString(jti),
		},
		Role: role,
	}
	token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(i.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issue token: sign: %w", err)
	}
	return token, expiresAt, nil
}

// Verifier checks access tokens.
type Verifier struct {
	secret []byte
}

// NewVerifier returns a Verifier for tokens signed with secret (at least
// MinSecretLen bytes).
func NewVerifier(secret []byte) (*Verifier, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("token secret: %d bytes, need at least %d", len(secret), MinSecretLen)
	}
	return &Verifier{secret: append([]byte(nil), secret...)}, nil
}

// Verify checks token at time now and returns its claims. It accepts only
// HS256 under the Verifier's secret, issuer IssuerName, audience Audience, a
// present expiry after now, a subject and a known role. Every error wraps
// ErrInvalidToken (an expired token ErrTokenExpired); the message is safe to
// log but should not be shown to clients in detail.
func (v *Verifier) Verify(token string, now time.Time) (Claims, error) {
	if token == "" {
		return Claims{}, fmt.Errorf("%w: empty", ErrInvalidToken)
	}
	if len(token) > maxTokenLen {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, maxTokenLen)
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(IssuerName),
		jwt.WithAudience(Audience),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithStrictDecoding(),
	)
	var claims tokenClaims
	_, err := parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		// WithValidMethods already restricts alg; checking the type as well
		// keeps a future parser change from handing a non-HMAC method the key.
		if _, ok := t.Method.(*jwt.SigningMethodHMAC); !ok {
			return nil, fmt.Errorf("unexpected signing method %q", t.Method.Alg())
		}
		return v.secret, nil
	})
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Claims{}, fmt.Errorf("%w: %v", ErrTokenExpired, err)
		}
		return Claims{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if claims.Subject == "" {
		return Claims{}, fmt.Errorf("%w: missing subject", ErrInvalidToken)
	}
	if claims.Role == "" {
		return Claims{}, fmt.Errorf("%w: missing role", ErrInvalidToken)
	}
	if !ValidRole(claims.Role) {
		return Claims{}, fmt.Errorf("%w: unknown role %q", ErrInvalidToken, claims.Role)
	}
	return Claims{UserID: claims.Subject, Role: claims.Role, ExpiresAt: claims.ExpiresAt.Time.UTC()}, nil
}

// DeriveSecret returns the token secret derived from the installation secret
// (HMAC-SHA256(installationSecret, "shopmesh/jwt")), used when no token
// secret is configured explicitly. Every process of one installation derives
// the same 32 bytes, and they reveal nothing about the installation secret.
func DeriveSecret(installationSecret string) []byte {
	mac := hmac.New(sha256.New, []byte(installationSecret))
	mac.Write([]byte("shopmesh/jwt"))
	return mac.Sum(nil)
}
