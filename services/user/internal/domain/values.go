package domain

import (
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// UserID identifies an account (a UUID, canonical lower-case form).
type UserID string

// ParseUserID accepts a UUID in canonical form.
func ParseUserID(s string) (UserID, error) {
	u, err := uuid.Parse(s)
	if err != nil || u.String() != strings.ToLower(s) {
		return "", &ValidationError{Fields: []FieldError{{"id", "must be a UUID"}}}
	}
	return UserID(u.String()), nil
}

func (id UserID) String() string { return string(id) }

// Role is what an account may do.
type Role string

// Roles.
const (
	RoleCustomer Role = "customer"
	RoleAdmin    Role = "admin"
)

// ParseRole accepts a known role.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleCustomer, RoleAdmin:
		return r, nil
	}
	return "", &ValidationError{Fields: []FieldError{{"role", "must be customer or admin"}}}
}

func (r Role) String() string { return string(r) }

// Email is a normalised (trimmed, lower-case) address: the login and the
// contact address. Only the common dot-atom form is accepted (no quoted
// local parts, no IP literals), with a host name of at least two labels.
type Email string

// Email length limits (RFC 5321).
const (
	maxEmailLen = 254
	maxLocalLen = 64
)

// ParseEmail normalises and validates raw.
func ParseEmail(raw string) (Email, error) {
	s := strings.ToLower(strings.TrimSpace(raw))
	if msg := emailProblem(s); msg != "" {
		return "", &ValidationError{Fields: []FieldError{{"email", msg}}}
	}
	return Email(s), nil
}

func (e Email) String() string { return string(e) }

func emailProblem(s string) string {
	switch {
	case s == "":
		return "is required"
	case len(s) > maxEmailLen:
		return "must be at most 254 characters"
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "must be an email address"
	}
	local, host := s[:at], s[at+1:]
	if local == "" || len(local) > maxLocalLen || !dotAtom(local) {
		return "must be an email address"
	}
	if !hostname(host) {
		return "must be an email address with a valid domain"
	}
	return ""
}

// dotAtom reports whether s is an RFC 5322 dot-atom of ASCII atext.
func dotAtom(s string) bool {
	if strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case strings.ContainsRune(".!#$%&'*+-/=?^_`{|}~", c):
		default:
			return false
		}
	}
	return true
}

// hostname reports whether s is a DNS name of at least two labels whose last
// label (the top-level domain) is alphabetic.
func hostname(s string) bool {
	if len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	tld := labels[len(labels)-1]
	if len(tld) < 2 {
		return false
	}
	for _, c := range tld {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// Name is a display name: trimmed, 1 to 200 characters, one line.
type Name string

// MaxNameLen is the longest accepted display name, in characters.
const MaxNameLen = 200

// ParseName validates and trims raw.
func ParseName(raw string) (Name, error) {
	s, fe := text("name", raw, true, MaxNameLen)
	if fe != nil {
		return "", &ValidationError{Fields: []FieldError{*fe}}
	}
	return Name(s), nil
}

func (n Name) String() string { return string(n) }

// Password policy, in characters (not bytes).
const (
	MinPasswordLen = 10
	MaxPasswordLen = 128
)

// CheckPassword applies the password policy to a new password: 10 to 128
// characters of valid UTF-8, not only whitespace. Passwords are used exactly
// as given (never trimmed), so what the user typed is what is hashed.
func CheckPassword(plain string) error {
	msg := ""
	switch n := utf8.RuneCountInString(plain); {
	case plain == "":
		msg = "is required"
	case !utf8.ValidString(plain):
		msg = "must be valid UTF-8"
	case n < MinPasswordLen:
		msg = "must be at least 10 characters"
	case n > MaxPasswordLen:
		msg = "must be at most 128 characters"
	case strings.TrimSpace(plain) == "":
		msg = "must not be only whitespace"
	}
	if msg != "" {
		return &ValidationError{Fields: []FieldError{{"password", msg}}}
	}
	return nil
}
