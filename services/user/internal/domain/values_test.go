package domain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/services/user/internal/domain"
)

func TestParseEmail(t *testing.T) {
	t.Parallel()
	valid := []struct{ in, want string }{
		{"alice@example.com", "alice@example.com"},
		{"  Alice.Smith@Example.COM \t", "alice.smith@example.com"},
		{"a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk"},
		{"o'neil@example.ie", "o'neil@example.ie"},
		{"x@a-b.io", "x@a-b.io"},
		{strings.Repeat("a", 64) + "@example.com", strings.Repeat("a", 64) + "@example.com"},
	}
	for _, tc := range valid {
		got, err := domain.ParseEmail(tc.in)
		if err != nil {
			t.Errorf("ParseEmail(%q): %v", tc.in, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("ParseEmail(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	invalid := []string{
		"", "   ", "alice", "alice@", "@example.com", "alice@example", "alice@@example.com",
		"alice@example..com", "alice@.example.com", "alice@-example.com", "alice@example-.com",
		".alice@example.com", "alice.@example.com", "al..ice@example.com", "al ice@example.com",
		`"alice"@example.com`, "alice@[127.0.0.1]", "Alice <alice@example.com>", "alice@example.c",
		"alice@example.123", "ålice@example.com", "alice@exämple.com", "alice@exa mple.com",
		"alice\x00@example.com",
		strings.Repeat("a", 65) + "@example.com",
		"a@" + strings.Repeat("b", 64) + ".com",
		strings.Repeat("a", 60) + "@" + strings.Repeat(strings.Repeat("b", 60)+".", 4) + "com",
	}
	for _, in := range invalid {
		if got, err := domain.ParseEmail(in); err == nil {
			t.Errorf("ParseEmail(%q) = %q, want an error", in, got)
		} else if !isField(err, "email") {
			t.Errorf("ParseEmail(%q) error %v does not name field email", in, err)
		}
	}
}

func TestCheckPassword(t *testing.T) {
	t.Parallel()
	ok := []string{
		"0123456789",
		strings.Repeat("x", 128),
		" leading and trailing spaces count ",
		"ééééééééé€", // 10 characters, more bytes
		strings.Repeat("€", 128),
	}
	for _, p := range ok {
		if err := domain.CheckPassword(p); err != nil {
			t.Errorf("CheckPassword(%q): %v", p, err)
		}
	}
	bad := []string{
		"", "short", "123456789", strings.Repeat("x", 129), strings.Repeat("€", 129),
		strings.Repeat(" ", 12), "\xff\xfe0123456789",
	}
	for _, p := range bad {
		if err := domain.CheckPassword(p); err == nil {
			t.Errorf("CheckPassword(%q) accepted", p)
		} else if !isField(err, "password") {
			t.Errorf("CheckPassword(%q) error %v does not name field password", p, err)
		}
	}
}

func TestParseName(t *testing.T) {
	t.Parallel()
	if n, err := domain.ParseName("  Ada Lovelace "); err != nil || n != "Ada Lovelace" {
		t.Errorf("ParseName = %q, %v; want trimmed name", n, err)
	}
	for _, in := range []string{"", "  ", strings.Repeat("n", 201), "Ada\nLovelace", "Ada\x00", "\xff"} {
		if _, err := domain.ParseName(in); err == nil {
			t.Errorf("ParseName(%q) accepted", in)
		}
	}
	if _, err := domain.ParseName(strings.Repeat("ñ", 200)); err != nil {
		t.Errorf("200 characters rejected: %v", err)
	}
}

func TestParseUserID(t *testing.T) {
	t.Parallel()
	if _, err := domain.ParseUserID("0190a6c4-0000-7000-8000-000000000001"); err != nil {
		t.Errorf("valid UUID rejected: %v", err)
	}
	if id, err := domain.ParseUserID("0190A6C4-0000-7000-8000-000000000001"); err != nil || id != "0190a6c4-0000-7000-8000-000000000001" {
		t.Errorf("upper-case UUID = %q, %v; want it normalised", id, err)
	}
	for _, in := range []string{"", "1", "not-a-uuid", "{0190a6c4-0000-7000-8000-000000000001}",
		"urn:uuid:0190a6c4-0000-7000-8000-000000000001"} {
		if _, err := domain.ParseUserID(in); err == nil {
			t.Errorf("ParseUserID(%q) accepted", in)
		}
	}
}

func TestNewAddress(t *testing.T) {
	t.Parallel()
	a, err := domain.NewAddress(" Ada ", "1 Main St", "", "Berlin", "10115", " de ")
	if err != nil {
		t.Fatalf("NewAddress: %v", err)
	}
	if a.Name() != "Ada" || a.Country() != "DE" {
		t.Errorf("address = %+v, want trimmed name and upper-case country", a)
	}
	_, err = domain.NewAddress("", "", strings.Repeat("x", 201), "", "", "Germany")
	var v *domain.ValidationError
	if !errors.As(err, &v) {
		t.Fatalf("err = %v, want a ValidationError", err)
	}
	got := map[string]bool{}
	for _, f := range v.Fields {
		got[f.Field] = true
	}
	for _, f := range []string{"name", "line1", "line2", "city", "postal_code", "country"} {
		if !got[f] {
			t.Errorf("field %s not reported; got %+v", f, v.Fields)
		}
	}
	for _, c := range []string{"D", "DEU", "1A", "D-", ""} {
		if _, err := domain.NewAddress("A", "B", "", "C", "1", c); !isField(err, "country") {
			t.Errorf("country %q: err = %v, want a country error", c, err)
		}
	}
}

func TestJoinReportsEveryField(t *testing.T) {
	t.Parallel()
	_, e1 := domain.ParseEmail("bad")
	e2 := domain.CheckPassword("short")
	_, e3 := domain.ParseName("")
	err := domain.Join(e1, nil, e2, e3)
	var v *domain.ValidationError
	if !errors.As(err, &v) || len(v.Fields) != 3 {
		t.Fatalf("Join = %v, want 3 fields", err)
	}
	other := errors.New("boom")
	if got := domain.Join(e1, other); got != other {
		t.Errorf("Join with a non-validation error = %v, want it", got)
	}
	if domain.Join(nil, nil) != nil {
		t.Error("Join of nils is not nil")
	}
}

func isField(err error, field string) bool {
	var v *domain.ValidationError
	if !errors.As(err, &v) {
		return false
	}
	for _, f := range v.Fields {
		if f.Field == field {
			return true
		}
	}
	return false
}

var cheap = domain.HashParams{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

func TestHasher(t *testing.T) {
	t.Parallel()
	h, err := domain.NewHasher(cheap)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := h.Hash("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(hash), "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("hash %q is not a PHC argon2id string with the given costs", hash)
	}
	if !h.Verify(hash, "correct horse battery") {
		t.Error("the right password does not verify")
	}
	for _, wrong := range []string{"", "correct horse batter", "correct horse battery ", "Correct horse battery"} {
		if h.Verify(hash, wrong) {
			t.Errorf("%q verifies", wrong)
		}
	}
	again, _ := h.Hash("correct horse battery")
	if again == hash {
		t.Error("two hashes of one password are equal; want a fresh salt each time")
	}
	if _, err := domain.ParsePasswordHash(string(hash)); err != nil {
		t.Errorf("ParsePasswordHash(own hash): %v", err)
	}
	if h.VerifyNone("correct horse battery") {
		t.Error("VerifyNone returned true")
	}
	// A hash made with other costs still verifies: costs travel in the hash.
	strong, _ := domain.NewHasher(domain.HashParams{MemoryKiB: 128, Iterations: 2, Parallelism: 2})
	other, _ := strong.Hash("pw-0123456789")
	if !h.Verify(other, "pw-0123456789") {
		t.Error("a hash with different costs does not verify")
	}
}

func TestPasswordHashRejectsMalformed(t *testing.T) {
	t.Parallel()
	h, _ := domain.NewHasher(cheap)
	for _, s := range []string{
		"", "plain", "$2a$10$abcdefghijklmnopqrstuv", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=64,t=99,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=64,t=1,p=1$!!$a2V5a2V5a2V5a2V5a2V5a2V5",
	} {
		if _, err := domain.ParsePasswordHash(s); err == nil {
			t.Errorf("ParsePasswordHash(%q) accepted", s)
		}
		if h.Verify(domain.PasswordHash(s), "anything") {
			t.Errorf("Verify with malformed hash %q returned true", s)
		}
	}
}

func TestHashParamsValidate(t *testing.T) {
	t.Parallel()
	if err := domain.DefaultHashParams().Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	for _, p := range []domain.HashParams{{}, {MemoryKiB: 32, Iterations: 1, Parallelism: 1}, {MemoryKiB: 64, Iterations: 0, Parallelism: 1}, {MemoryKiB: 64, Iterations: 1}} {
		if _, err := domain.NewHasher(p); err == nil {
			t.Errorf("NewHasher(%+v) accepted", p)
		}
	}
}

func newUser(t *testing.T) *domain.User {
	t.Helper()
	id, _ := domain.ParseUserID("0190a6c4-0000-7000-8000-000000000001")
	email, _ := domain.ParseEmail("ada@example.com")
	name, _ := domain.ParseName("Ada")
	u, err := domain.NewUser(id, email, name, "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5", domain.RoleCustomer, time.Unix(1e9, 0))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestUserLifecycle(t *testing.T) {
	t.Parallel()
	u := newUser(t)
	if !u.Active() || u.CheckLogin() != nil {
		t.Fatal("a new user is not active")
	}
	a, _ := domain.NewAddress("Ada", "1 Main St", "", "Berlin", "10115", "DE")
	if changed, err := u.SetAddress(a); !changed || err != nil {
		t.Errorf("first SetAddress = %v, %v; want changed", changed, err)
	}
	if changed, err := u.SetAddress(a); changed || err != nil {
		t.Errorf("same address again = %v, %v; want unchanged", changed, err)
	}
	if changed, _ := u.MakeAdmin(); !changed || u.Role() != domain.RoleAdmin {
		t.Error("MakeAdmin did not promote")
	}
	if changed, _ := u.MakeAdmin(); changed {
		t.Error("MakeAdmin twice reported a change")
	}
	if _, err := u.Deactivate(strings.Repeat("r", 501), time.Unix(2e9, 0)); err == nil {
		t.Error("an over-long reason was accepted")
	}
	if changed, err := u.Deactivate(" fraud ", time.Unix(2e9, 0)); !changed || err != nil {
		t.Fatalf("Deactivate = %v, %v", changed, err)
	}
	if u.Active() || u.DeactivationReason() != "fraud" || !errors.Is(u.CheckLogin(), domain.ErrDeactivated) {
		t.Errorf("after Deactivate: active=%v reason=%q", u.Active(), u.DeactivationReason())
	}
	if changed, err := u.Deactivate("again", time.Unix(3e9, 0)); changed || err != nil || u.DeactivationReason() != "fraud" {
		t.Errorf("second Deactivate = %v, %v, reason %q; want a no-op", changed, err, u.DeactivationReason())
	}
	b, _ := domain.NewAddress("Ada", "2 Main St", "", "Berlin", "10115", "DE")
	if _, err := u.SetAddress(b); !errors.Is(err, domain.ErrDeactivated) {
		t.Errorf("SetAddress on a deactivated account: %v", err)
	}
}

func TestUserFromDatabaseRejectsInvalid(t *testing.T) {
	t.Parallel()
	const hash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5"
	const id = "0190a6c4-0000-7000-8000-000000000001"
	now := time.Now()
	if _, err := domain.UserFromDatabase(id, "ada@example.com", "Ada", hash, "customer", nil, now, time.Time{}, ""); err != nil {
		t.Fatalf("valid row rejected: %v", err)
	}
	bad := [][5]string{
		{"x", "ada@example.com", "Ada", hash, "customer"},
		{id, "not-an-email", "Ada", hash, "customer"},
		{id, "ada@example.com", "", hash, "customer"},
		{id, "ada@example.com", "Ada", "plain", "customer"},
		{id, "ada@example.com", "Ada", hash, "root"},
	}
	for _, b := range bad {
		if _, err := domain.UserFromDatabase(b[0], b[1], b[2], b[3], b[4], nil, now, time.Time{}, ""); err == nil {
			t.Errorf("UserFromDatabase(%v) accepted", b)
		}
	}
}
