package domain

import (
	"fmt"
	"time"
)

// MaxReasonLen bounds a deactivation reason, in characters.
const MaxReasonLen = 500

// User is an account. Its zero value is not valid; build one with NewUser or
// UserFromDatabase.
type User struct {
	id                 UserID
	email              Email
	name               Name
	passwordHash       PasswordHash
	role               Role
	address            *Address
	createdAt          time.Time
	deactivatedAt      time.Time // zero while active
	deactivationReason string
}

// NewUser returns a new, active account without an address.
func NewUser(id UserID, email Email, name Name, hash PasswordHash, role Role, now time.Time) (*User, error) {
	u := &User{id: id, email: email, name: name, passwordHash: hash, role: role, createdAt: now.UTC()}
	if err := u.check(); err != nil {
		return nil, err
	}
	return u, nil
}

// UserFromDatabase rebuilds a stored account, checking it as NewUser does.
// address may be nil; deactivatedAt is zero for an active account.
func UserFromDatabase(id, email, name, hash, role string, address *Address, createdAt, deactivatedAt time.Time, reason string) (*User, error) {
	uid, err := ParseUserID(id)
	if err != nil {
		return nil, fmt.Errorf("stored user %q: %w", id, err)
	}
	e, err := ParseEmail(email)
	if err != nil {
		return nil, fmt.Errorf("stored user %s: %w", id, err)
	}
	n, err := ParseName(name)
	if err != nil {
		return nil, fmt.Errorf("stored user %s: %w", id, err)
	}
	h, err := ParsePasswordHash(hash)
	if err != nil {
		return nil, fmt.Errorf("stored user %s: %w", id, err)
	}
	r, err := ParseRole(role)
	if err != nil {
		return nil, fmt.Errorf("stored user %s: %w", id, err)
	}
	u := &User{id: uid, email: e, name: n, passwordHash: h, role: r, address: address,
		createdAt: createdAt.UTC(), deactivationReason: reason}
	if !deactivatedAt.IsZero() {
		u.deactivatedAt = deactivatedAt.UTC()
	}
	if err := u.check(); err != nil {
		return nil, fmt.Errorf("stored user %s: %w", id, err)
	}
	return u, nil
}

func (u *User) check() error {
	switch {
	case u.id == "" || u.email == "" || u.name == "" || u.passwordHash == "":
		return fmt.Errorf("user: id, email, name and password hash are required")
	case u.role != RoleCustomer && u.role != RoleAdmin:
		return fmt.Errorf("user: unknown role %q", u.role)
	case u.createdAt.IsZero():
		return fmt.Errorf("user: creation time is required")
	}
	return nil
}

func (u *User) ID() UserID                 { return u.id }
func (u *User) Email() Email               { return u.email }
func (u *User) Name() Name                 { return u.name }
func (u *User) PasswordHash() PasswordHash { return u.passwordHash }
func (u *User) Role() Role                 { return u.role }
func (u *User) CreatedAt() time.Time       { return u.createdAt }
func (u *User) Active() bool               { return u.deactivatedAt.IsZero() }
func (u *User) DeactivatedAt() time.Time   { return u.deactivatedAt }
func (u *User) DeactivationReason() string { return u.deactivationReason }

// Address returns the default address, if any.
func (u *User) Address() (Address, bool) {
	if u.address == nil {
		return Address{}, false
	}
	return *u.address, true
}

// CheckLogin returns ErrDeactivated for an account that may not log in.
// The password is checked before this, so that the answer for a wrong
// password never reveals that an account is deactivated.
func (u *User) CheckLogin() error {
	if !u.Active() {
		return ErrDeactivated
	}
	return nil
}

// SetAddress makes a the default address and reports whether it changed.
// A deactivated account cannot change anything.
func (u *User) SetAddress(a Address) (changed bool, err error) {
	if !u.Active() {
		return false, ErrDeactivated
	}
	if u.address != nil && *u.address == a {
		return false, nil
	}
	u.address = &a
	return true, nil
}

// Deactivate stops the account from logging in and reports whether it was
// active. Deactivating twice changes nothing (the first reason is kept).
func (u *User) Deactivate(reason string, now time.Time) (changed bool, err error) {
	r, fe := text("reason", reason, false, MaxReasonLen)
	if fe != nil {
		return false, &ValidationError{Fields: []FieldError{*fe}}
	}
	if !u.Active() {
		return false, nil
	}
	u.deactivatedAt = now.UTC()
	u.deactivationReason = r
	return true, nil
}

// MakeAdmin gives the account the admin role and reports whether it lacked
// it. A deactivated account cannot be promoted (there is no event that
// would tell other services it is active again).
func (u *User) MakeAdmin() (changed bool, err error) {
	if !u.Active() {
		return false, ErrDeactivated
	}
	if u.role == RoleAdmin {
		return false, nil
	}
	u.role = RoleAdmin
	return true, nil
}

// SetPasswordHash replaces the credential (an operator resetting it).
func (u *User) SetPasswordHash(h PasswordHash) { u.passwordHash = h }
