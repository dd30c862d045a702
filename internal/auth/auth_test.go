package auth_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/shopmesh/shopmesh/internal/auth"
)

var (
	secret = []byte("0123456789abcdef0123456789abcdef")
	other  = []byte("fedcba9876543210fedcba9876543210")
	now    = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func newPair(t *testing.T) (*auth.Issuer, *auth.Verifier) {
	t.Helper()
	iss, err := auth.NewIssuer(secret, time.Hour)
	if err != nil {
		t.Fatalf("NewIssuer: %v", err)
	}
	ver, err := auth.NewVerifier(secret)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return iss, ver
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	iss, ver := newPair(t)
	for _, role := range []string{auth.RoleCustomer, auth.RoleAdmin} {
		tok, exp, err := iss.Issue("u-1", role, now)
		if err != nil {
			t.Fatalf("Issue(%s): %v", role, err)
		}
		if want := now.Add(time.Hour); !exp.Equal(want) {
			t.Errorf("expiresAt = %s, want %s", exp, want)
		}
		c, err := ver.Verify(tok, now.Add(59*time.Minute))
		if err != nil {
			t.Fatalf("Verify(%s): %v", role, err)
		}
		want := auth.Claims{UserID: "u-1", Role: role, ExpiresAt: exp}
		if c != want {
			t.Errorf("claims = %+v, want %+v", c, want)
		}
	}
}

func TestIssueTruncatesExpiryToSeconds(t *testing.T) {
	t.Parallel()
	iss, ver := newPair(t)
	tok, exp, err := iss.Issue("u-1", auth.RoleCustomer, now.Add(700*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ver.Verify(tok, now)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ExpiresAt.Equal(exp) {
		t.Errorf("verified expiry %s != issued expiry %s", c.ExpiresAt, exp)
	}
}

func TestTokensDiffer(t *testing.T) {
	t.Parallel()
	iss, _ := newPair(t)
	a, _, errA := iss.Issue("u-1", auth.RoleCustomer, now)
	b, _, errB := iss.Issue("u-1", auth.RoleCustomer, now)
	if errA != nil || errB != nil {
		t.Fatalf("Issue: %v, %v", errA, errB)
	}
	if a == b {
		t.Error("two tokens issued at the same instant are identical; want a unique token id")
	}
}

func TestConstructorsRejectBadInput(t *testing.T) {
	t.Parallel()
	if _, err := auth.NewIssuer(secret[:31], time.Hour); err == nil {
		t.Error("NewIssuer accepted a 31-byte secret")
	}
	if _, err := auth.NewIssuer(secret, 0); err == nil {
		t.Error("NewIssuer accepted ttl 0")
	}
	if _, err := auth.NewVerifier(nil); err == nil {
		t.Error("NewVerifier accepted an empty secret")
	}
	iss, _ := newPair(t)
	if _, _, err := iss.Issue("", auth.RoleCustomer, now); err == nil {
		t.Error("Issue accepted an empty user id")
	}
	if _, _, err := iss.Issue("u-1", "root", now); err == nil {
		t.Error("Issue accepted role root")
	}
}

func TestIssuerCopiesSecret(t *testing.T) {
	t.Parallel()
	s := bytes.Clone(secret)
	iss, err := auth.NewIssuer(s, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s[0] ^= 0xff
	tok, _, err := iss.Issue("u-1", auth.RoleCustomer, now)
	if err != nil {
		t.Fatal(err)
	}
	_, ver := newPair(t)
	if _, err := ver.Verify(tok, now); err != nil {
		t.Errorf("mutating the caller's slice changed the issuer's key: %v", err)
	}
}

// sign builds a token with arbitrary claims and method, for forgeries.
func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func goodClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss":  auth.IssuerName,
		"aud":  auth.Audience,
		"sub":  "u-1",
		"role": auth.RoleCustomer,
		"exp":  now.Add(time.Hour).Unix(),
		"iat":  now.Unix(),
	}
}

func with(mod func(jwt.MapClaims)) jwt.MapClaims {
	c := goodClaims()
	mod(c)
	return c
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	iss, ver := newPair(t)
	valid, _, err := iss.Issue("u-1", auth.RoleCustomer, now)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(valid, ".")

	// tampered: same signature, payload promoted to admin.
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	m["role"] = auth.RoleAdmin
	promoted, _ := json.Marshal(m)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(promoted) + "." + parts[2]

	// none: unsigned token with the same claims.
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, goodClaims())
	// alg header rewritten to none on a real token, signature dropped.
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."

	cases := []struct {
		name  string
		token string
		at    time.Time
	}{
		{"empty", "", now},
		{"garbage", "not-a-token", now},
		{"two segments", parts[0] + "." + parts[1], now},
		{"oversized", valid + strings.Repeat("A", 5000), now},
		{"alg none", none, now},
		{"alg none header swap", noneHeader, now},
		{"HS512 same secret", sign(t, jwt.SigningMethodHS512, secret, goodClaims()), now},
		{"HS384 same secret", sign(t, jwt.SigningMethodHS384, secret, goodClaims()), now},
		{"forged other secret", sign(t, jwt.SigningMethodHS256, other, goodClaims()), now},
		{"tampered payload", tampered, now},
		{"tampered signature", parts[0] + "." + parts[1] + "." + flip(parts[2]), now},
		{"expired", valid, now.Add(time.Hour)},
		{"expired long ago", valid, now.Add(48 * time.Hour)},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() })), now},
		{"no expiry", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { delete(c, "exp") })), now},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { c["iss"] = "evil" })), now},
		{"no issuer", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { delete(c, "iss") })), now},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { c["aud"] = "other-api" })), now},
		{"no audience", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { delete(c, "aud") })), now},
		{"no subject", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { delete(c, "sub") })), now},
		{"empty subject", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { c["sub"] = "" })), now},
		{"no role", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { delete(c, "role") })), now},
		{"unknown role", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { c["role"] = "root" })), now},
		{"role wrong type", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { c["role"] = 1 })), now},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := ver.Verify(tc.token, tc.at)
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", c)
			}
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("error %v does not wrap ErrInvalidToken", err)
			}
			if c != (auth.Claims{}) {
				t.Errorf("claims = %+v on error, want zero", c)
			}
		})
	}
}

func TestVerifyExpiredIsDistinguishable(t *testing.T) {
	t.Parallel()
	iss, ver := newPair(t)
	tok, exp, err := iss.Issue("u-1", auth.RoleCustomer, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ver.Verify(tok, exp.Add(-time.Second)); err != nil {
		t.Fatalf("one second before expiry: %v", err)
	}
	_, err = ver.Verify(tok, exp)
	if !errors.Is(err, auth.ErrTokenExpired) {
		t.Errorf("at expiry: err = %v, want ErrTokenExpired", err)
	}
}

func TestVerifyWrongVerifierSecret(t *testing.T) {
	t.Parallel()
	iss, own := newPair(t)
	ver, err := auth.NewVerifier(other)
	if err != nil {
		t.Fatal(err)
	}
	// A token the right verifier accepts, so only the secret can be wrong.
	tok, _, err := iss.Issue("u-1", auth.RoleAdmin, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := own.Verify(tok, now); err != nil {
		t.Fatalf("the issuer's own verifier rejected the token: %v", err)
	}
	if _, err := ver.Verify(tok, now); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("err = %v, want ErrInvalidToken", err)
	}
}

func TestDeriveSecret(t *testing.T) {
	t.Parallel()
	a := auth.DeriveSecret("installation-secret")
	if len(a) != 32 {
		t.Fatalf("len = %d, want 32", len(a))
	}
	if !bytes.Equal(a, auth.DeriveSecret("installation-secret")) {
		t.Error("DeriveSecret is not deterministic")
	}
	if bytes.Equal(a, auth.DeriveSecret("installation-secreT")) {
		t.Error("different installation secrets derive the same token secret")
	}
	// HMAC-SHA256(key="key", msg="shopmesh/jwt"), computed independently.
	const want = "3dff45210be587e19fbcb9227a65b1df95ea73637873d420ade748df27ea66e3"
	if got := hex.EncodeToString(auth.DeriveSecret("key")); got != want {
		t.Errorf("DeriveSecret(\"key\") = %s, want %s", got, want)
	}
	if _, err := auth.NewIssuer(auth.DeriveSecret(""), time.Hour); err != nil {
		t.Errorf("derived secret rejected by NewIssuer: %v", err)
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}
