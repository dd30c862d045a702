// Package domain holds the user service's rules: what a valid email, name,
// password and address are, how passwords are hashed, and what may happen to
// an account (registration, address change, promotion, deactivation).
//
// It is pure: no database, no HTTP, no events. Values are built through
// constructors that reject invalid input, so a User can never hold one.
package domain

import (
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Errors the service's rules return; the transport maps them to statuses.
var (
	ErrNotFound           = errors.New("user not found")
	ErrEmailTaken         = errors.New("email already registered")
	ErrInvalidCredentials = errors.New("invalid email or password")
	ErrDeactivated        = errors.New("account is deactivated")
	ErrNoAddress          = errors.New("no default address")
)

// FieldError names one invalid input field. Field is the snake_case name the
// public API uses for it.
type FieldError struct {
	Field   string
	Message string
}

// ValidationError lists every invalid field of one input.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Fields))
	for _, f := range e.Fields {
		parts = append(parts, f.Field+": "+f.Message)
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// fieldErrors collects FieldErrors and returns them as one error.
type fieldErrors []FieldError

func (f *fieldErrors) add(field, message string) { *f = append(*f, FieldError{field, message}) }

func (f fieldErrors) err() error {
	if len(f) == 0 {
		return nil
	}
	return &ValidationError{Fields: f}
}

// Join merges validation errors of several inputs into one, so a client
// sees every problem of a request at once. Non-validation errors are kept
// as they are (the first one wins).
func Join(errs ...error) error {
	var all fieldErrors
	for _, err := range errs {
		if err == nil {
			continue
		}
		var v *ValidationError
		if !errors.As(err, &v) {
			return err
		}
		all = append(all, v.Fields...)
	}
	return all.err()
}

// text checks a trimmed single-line text field: required or not, at most
// max characters, valid UTF-8 without control characters.
func text(field, s string, required bool, max int) (string, *FieldError) {
	s = strings.TrimSpace(s)
	switch {
	case !utf8.ValidString(s):
		return "", &FieldError{field, "must be valid UTF-8"}
	case s == "" && required:
		return "", &FieldError{field, "is required"}
	case utf8.RuneCountInString(s) > max:
		return "", &FieldError{field, "must be at most " + strconv.Itoa(max) + " characters"}
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "", &FieldError{field, "must not contain control characters"}
	}
	return s, nil
}
