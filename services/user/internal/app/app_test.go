package app_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/auth"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/user/internal/app"
	"github.com/shopmesh/shopmesh/services/user/internal/domain"
)

// fakeRepo is an in-memory Repository: fn runs on a copy, which replaces
// the stored account only when fn succeeds, like a transaction.
type fakeRepo struct {
	mu     sync.Mutex
	users  map[domain.UserID]domain.User
	events []outbox.Event
}

func newFakeRepo() *fakeRepo { return &fakeRepo{users: map[domain.UserID]domain.User{}} }

func (r *fakeRepo) Add(_ context.Context, u *domain.User, events ...outbox.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, other := range r.users {
		if other.Email() == u.Email() {
			return domain.ErrEmailTaken
		}
	}
	r.users[u.ID()] = *u
	r.events = append(r.events, events...)
	return nil
}

func (r *fakeRepo) Update(_ context.Context, id domain.UserID, fn app.UpdateFunc) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	u, ok := r.users[id]
	if !ok {
		return domain.ErrNotFound
	}
	events, err := fn(&u)
	if err != nil {
		return err
	}
	r.users[id] = u
	r.events = append(r.events, events...)
	return nil
}

func (r *fakeRepo) UpdateByEmail(ctx context.Context, email domain.Email, fn app.UpdateFunc) error {
	u, err := r.ByEmail(ctx, email)
	if err != nil {
		return err
	}
	return r.Update(ctx, u.ID(), fn)
}

func (r *fakeRepo) ByEmail(_ context.Context, email domain.Email) (*domain.User, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range r.users {
		if u.Email() == email {
			return &u, nil
		}
	}
	return nil, domain.ErrNotFound
}

func (r *fakeRepo) ByID(_ context.Context, id domain.UserID) (*domain.User, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	u, ok := r.users[id]
	if !ok {
		return nil, domain.ErrNotFound
	}
	return &u, nil
}

func (r *fakeRepo) eventTypes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Type)
	}
	return out
}

var (
	secret = []byte("0123456789abcdef0123456789abcdef")
	now    = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func newService(t *testing.T) (*app.Service, *fakeRepo) {
	t.Helper()
	repo := newFakeRepo()
	hasher, err := domain.NewHasher(domain.HashParams{MemoryKiB: 64, Iterations: 1, Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := auth.NewIssuer(secret, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	newID := func() string {
		n++
		return []string{"0190a6c4-0000-7000-8000-000000000001", "0190a6c4-0000-7000-8000-000000000002",
			"0190a6c4-0000-7000-8000-000000000003", "0190a6c4-0000-7000-8000-000000000004"}[n-1]
	}
	s, err := app.NewService(repo, hasher, issuer, func() time.Time { return now }, newID)
	if err != nil {
		t.Fatal(err)
	}
	return s, repo
}

func register(t *testing.T, s *app.Service, email string) *domain.User {
	t.Helper()
	u, err := s.Register(context.Background(), app.RegisterInput{Email: email, Password: "password-123", Name: "Ada"})
	if err != nil {
		t.Fatalf("Register(%s): %v", email, err)
	}
	return u
}

func TestRegister(t *testing.T) {
	t.Parallel()
	s, repo := newService(t)
	u := register(t, s, "  Ada@Example.com ")
	if u.Email() != "ada@example.com" || u.Role() != domain.RoleCustomer {
		t.Errorf("user = %s %s, want normalised email and role customer", u.Email(), u.Role())
	}
	if len(repo.events) != 1 {
		t.Fatalf("events = %v, want one", repo.eventTypes())
	}
	e := repo.events[0]
	p, ok := e.Payload.(contracts.UserRegisteredV1)
	if e.Type != contracts.TypeUserRegisteredV1 || e.AggregateID != u.ID().String() || !ok ||
		p != (contracts.UserRegisteredV1{UserID: u.ID().String(), Email: "ada@example.com", Name: "Ada"}) {
		t.Errorf("event = %+v", e)
	}

	_, err := s.Register(context.Background(), app.RegisterInput{Email: "ADA@example.com", Password: "password-456", Name: "Other"})
	if !errors.Is(err, domain.ErrEmailTaken) {
		t.Errorf("duplicate email: err = %v, want ErrEmailTaken", err)
	}
	if len(repo.events) != 1 {
		t.Errorf("a failed registration published: %v", repo.eventTypes())
	}
}

func TestRegisterReportsEveryInvalidField(t *testing.T) {
	t.Parallel()
	s, repo := newService(t)
	_, err := s.Register(context.Background(), app.RegisterInput{Email: "nope", Password: "short", Name: " "})
	var v *domain.ValidationError
	if !errors.As(err, &v) || len(v.Fields) != 3 {
		t.Fatalf("err = %v, want 3 invalid fields", err)
	}
	if len(repo.users) != 0 || len(repo.events) != 0 {
		t.Error("an invalid registration changed state")
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	s, _ := newService(t)
	u := register(t, s, "ada@example.com")
	ctx := context.Background()

	tok, err := s.Login(ctx, app.LoginInput{Email: " ADA@example.com", Password: "password-123"})
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	ver, _ := auth.NewVerifier(secret)
	c, err := ver.Verify(tok.Token, now)
	if err != nil {
		t.Fatalf("issued token does not verify: %v", err)
	}
	if c.UserID != u.ID().String() || c.Role != auth.RoleCustomer || !c.ExpiresAt.Equal(tok.ExpiresAt) || !tok.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Errorf("claims = %+v, token expiry %s", c, tok.ExpiresAt)
	}

	for _, in := range []app.LoginInput{
		{Email: "ada@example.com", Password: "password-124"},
		{Email: "bob@example.com", Password: "password-123"},
		{Email: "not an email", Password: "password-123"},
	} {
		if _, err := s.Login(ctx, in); !errors.Is(err, domain.ErrInvalidCredentials) {
			t.Errorf("Login(%+v): err = %v, want ErrInvalidCredentials", in, err)
		}
	}
	var v *domain.ValidationError
	if _, err := s.Login(ctx, app.LoginInput{}); !errors.As(err, &v) || len(v.Fields) != 2 {
		t.Errorf("empty login: err = %v, want 2 missing fields", err)
	}
}

func TestLoginDeactivated(t *testing.T) {
	t.Parallel()
	s, _ := newService(t)
	u := register(t, s, "ada@example.com")
	adm := app.Caller{UserID: "0190a6c4-0000-7000-8000-0000000000aa", Role: "admin"}
	if _, err := s.Deactivate(context.Background(), adm, u.ID().String(), "fraud"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Login(context.Background(), app.LoginInput{Email: "ada@example.com", Password: "password-123"})
	if !errors.Is(err, domain.ErrDeactivated) {
		t.Errorf("right password: err = %v, want ErrDeactivated", err)
	}
	_, err = s.Login(context.Background(), app.LoginInput{Email: "ada@example.com", Password: "wrong-password"})
	if !errors.Is(err, domain.ErrInvalidCredentials) {
		t.Errorf("wrong password: err = %v, want ErrInvalidCredentials (no hint the account exists)", err)
	}
}

func TestSetAddress(t *testing.T) {
	t.Parallel()
	s, repo := newService(t)
	u := register(t, s, "ada@example.com")
	ctx := context.Background()
	in := app.AddressInput{Name: "Ada", Line1: "1 Main St", City: "Berlin", PostalCode: "10115", Country: "de"}

	if _, err := s.SetAddress(ctx, app.Caller{}, in); !errors.Is(err, app.ErrUnauthenticated) {
		t.Errorf("anonymous: err = %v", err)
	}
	if _, err := s.SetAddress(ctx, app.Caller{UserID: "0190a6c4-0000-7000-8000-0000000000ff", Role: "customer"}, in); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("unknown user: err = %v", err)
	}
	me := app.Caller{UserID: u.ID().String(), Role: "customer"}
	if _, err := s.Address(ctx, me); !errors.Is(err, domain.ErrNoAddress) {
		t.Errorf("Address before any: err = %v", err)
	}
	a, err := s.SetAddress(ctx, me, in)
	if err != nil || a.Country() != "DE" {
		t.Fatalf("SetAddress = %+v, %v", a, err)
	}
	if _, err := s.SetAddress(ctx, me, in); err != nil {
		t.Fatal(err)
	}
	if got := repo.eventTypes(); len(got) != 2 || got[1] != contracts.TypeUserAddressChangedV1 {
		t.Errorf("events = %v, want registered then one address change", got)
	}
	if got, err := s.Address(ctx, me); err != nil || got != a {
		t.Errorf("Address = %+v, %v", got, err)
	}
	in.Country = "Germany"
	if _, err := s.SetAddress(ctx, me, in); err == nil {
		t.Error("invalid country accepted")
	}
}

func TestDeactivate(t *testing.T) {
	t.Parallel()
	s, repo := newService(t)
	u := register(t, s, "ada@example.com")
	ctx := context.Background()
	adm := app.Caller{UserID: "0190a6c4-0000-7000-8000-0000000000aa", Role: "admin"}

	cases := []struct {
		caller app.Caller
		id     string
		want   error
	}{
		{app.Caller{}, u.ID().String(), app.ErrUnauthenticated},
		{app.Caller{UserID: u.ID().String(), Role: "customer"}, u.ID().String(), app.ErrForbidden},
		{adm, adm.UserID, app.ErrSelfDeactivate},
		{adm, "not-a-uuid", domain.ErrNotFound},
		{adm, "0190a6c4-0000-7000-8000-0000000000ff", domain.ErrNotFound},
	}
	for _, tc := range cases {
		if _, err := s.Deactivate(ctx, tc.caller, tc.id, ""); !errors.Is(err, tc.want) {
			t.Errorf("Deactivate(%+v, %s): err = %v, want %v", tc.caller, tc.id, err, tc.want)
		}
	}
	for range 2 {
		got, err := s.Deactivate(ctx, adm, u.ID().String(), "chargebacks")
		if err != nil || got.Active() {
			t.Fatalf("Deactivate = %v, %v", got, err)
		}
	}
	types := repo.eventTypes()
	if len(types) != 2 || types[1] != contracts.TypeUserDeactivatedV1 {
		t.Fatalf("events = %v, want registered and one deactivation", types)
	}
	if p := repo.events[1].Payload.(contracts.UserDeactivatedV1); p.Reason != "chargebacks" || p.UserID != u.ID().String() {
		t.Errorf("payload = %+v", p)
	}
}

func TestCreateAdmin(t *testing.T) {
	t.Parallel()
	s, repo := newService(t)
	ctx := context.Background()
	in := app.RegisterInput{Email: "root@example.com", Password: "admin-password", Name: "Root"}

	res, err := s.CreateAdmin(ctx, in)
	if err != nil || !res.Created || res.User.Role() != domain.RoleAdmin {
		t.Fatalf("first CreateAdmin = %+v, %v", res, err)
	}
	res, err = s.CreateAdmin(ctx, in)
	if err != nil || res.Created || res.Promoted || res.PasswordReset {
		t.Errorf("second CreateAdmin = %+v, %v; want a no-op", res, err)
	}
	if got := repo.eventTypes(); len(got) != 1 {
		t.Errorf("events = %v, want one registration", got)
	}

	cust := register(t, s, "ada@example.com")
	res, err = s.CreateAdmin(ctx, app.RegisterInput{Email: "ada@example.com", Password: "new-admin-password"})
	if err != nil || !res.Promoted || !res.PasswordReset || res.User.ID() != cust.ID() {
		t.Errorf("promote = %+v, %v", res, err)
	}
	if _, err := s.Login(ctx, app.LoginInput{Email: "ada@example.com", Password: "new-admin-password"}); err != nil {
		t.Errorf("login with the new password: %v", err)
	}
	if got := repo.eventTypes(); len(got) != 2 {
		t.Errorf("events = %v, want no event for a promotion", got)
	}

	if _, err := s.Deactivate(ctx, app.Caller{UserID: res.User.ID().String(), Role: "admin"}, "0190a6c4-0000-7000-8000-000000000001", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAdmin(ctx, in); !errors.Is(err, domain.ErrDeactivated) {
		t.Errorf("deactivated account: err = %v, want ErrDeactivated", err)
	}
	if _, err := s.CreateAdmin(ctx, app.RegisterInput{Email: "x@example.com", Password: "short"}); err == nil {
		t.Error("a weak password was accepted")
	}
}
