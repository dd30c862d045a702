package user_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/auth"
	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/user"
	"github.com/shopmesh/shopmesh/tests/servicetest"
)

var secret = []byte("component-test-secret-0123456789abcdef")

// cheap keeps password hashing fast in tests; the costs travel in each hash.
var cheap = user.PasswordHashing{MemoryKiB: 256, Iterations: 1, Parallelism: 1}

// harness is one user service running in-process (see servicetest), with a
// cursor over the events it published.
type harness struct {
	*servicetest.Service
	t    *testing.T
	next int // how many published events nextEvent has returned
}

func start(t *testing.T) *harness {
	t.Helper()
	run := func(ctx context.Context, kit servicekit.Config, logger *slog.Logger) error {
		return user.Run(ctx, user.Config{Kit: kit, TokenSecret: secret, PasswordHashing: cheap}, logger)
	}
	return &harness{Service: servicetest.Start(t, servicetest.Spec{Name: user.Name, Run: run}), t: t}
}

type response = servicetest.Response

// decode decodes a JSON answer into v.
func decode(t *testing.T, r response, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("response %s: %v", r.Body, err)
	}
}

// identity is what the gateway adds after verifying a token.
type identity = servicetest.Caller

var anonymous = servicetest.Anonymous

func (h *harness) do(method, path string, who identity, body string) response {
	h.t.Helper()
	return h.doRaw(method, path, who, body, "application/json")
}

func (h *harness) doRaw(method, path string, who identity, body, contentType string) response {
	h.t.Helper()
	return h.Do(method, path, who, []byte(body), "Content-Type", contentType)
}

// nextEvent waits for the next event the service published, in the order
// the scratch queue received them, and checks its envelope and contract.
func (h *harness) nextEvent() outbox.Message {
	h.t.Helper()
	var e outbox.Message
	h.Poll("the next published event", func() (bool, string) {
		all := h.Events("")
		if len(all) <= h.next {
			return false, fmt.Sprintf("%d events so far, all returned", len(all))
		}
		e = all[h.next]
		return true, ""
	})
	h.next++
	if err := contracts.Validate(e.Type, e.Payload); err != nil {
		h.t.Errorf("published %s breaks its contract: %v\n%s", e.Type, err, e.Payload)
	}
	if e.Source != user.Name || e.ID == "" {
		h.t.Errorf("envelope of %s: source %q id %q", e.Type, e.Source, e.ID)
	}
	return e
}

func (h *harness) register(email, password, name string) string {
	h.t.Helper()
	body, _ := json.Marshal(map[string]string{"email": email, "password": password, "name": name})
	res := h.do("POST", "/api/v1/auth/register", anonymous, string(body))
	if res.Status != http.StatusCreated {
		h.t.Fatalf("register %s: %d %s", email, res.Status, res.Body)
	}
	var out struct{ ID string }
	decode(h.t, res, &out)
	return out.ID
}

func (h *harness) login(email, password string) response {
	h.t.Helper()
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	return h.do("POST", "/api/v1/auth/login", anonymous, string(body))
}

func problem(t *testing.T, r response, status int) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Errorf("status = %d, want %d; body %s", r.Status, status, r.Body)
	}
	if r.ContentType != "application/problem+json" {
		t.Errorf("content type = %q, want application/problem+json; body %s", r.ContentType, r.Body)
	}
	var p map[string]any
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Errorf("problem body %s: %v", r.Body, err)
	}
	return p
}

func TestRegisterAndLogin(t *testing.T) {
	t.Parallel()
	h := start(t)

	res := h.do("POST", "/api/v1/auth/register", anonymous, `{"email":"  Ada@Example.COM ","password":"correct horse","name":" Ada Lovelace "}`)
	if res.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", res.Status, res.Body)
	}
	var reg struct{ ID, Email, Name string }
	decode(t, res, &reg)
	if reg.Email != "ada@example.com" || reg.Name != "Ada Lovelace" || reg.ID == "" {
		t.Errorf("register response = %+v", reg)
	}

	e := h.nextEvent()
	if e.Type != contracts.TypeUserRegisteredV1 || e.AggregateID != reg.ID {
		t.Fatalf("event = %s for %s, want user.registered.v1 for %s", e.Type, e.AggregateID, reg.ID)
	}
	var p contracts.UserRegisteredV1
	if err := contracts.Decode(e.Type, e.Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p != (contracts.UserRegisteredV1{UserID: reg.ID, Email: "ada@example.com", Name: "Ada Lovelace"}) {
		t.Errorf("payload = %+v", p)
	}

	// The same email in another case is the same account.
	dup := problem(t, h.do("POST", "/api/v1/auth/register", anonymous, `{"email":"ADA@example.com","password":"another password","name":"Imposter"}`), http.StatusConflict)
	if !strings.HasSuffix(dup["type"].(string), "/email-taken") {
		t.Errorf("duplicate problem = %v", dup)
	}

	res = h.login("ADA@example.com", "correct horse")
	if res.Status != http.StatusOK {
		t.Fatalf("login: %d %s", res.Status, res.Body)
	}
	var tok struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	decode(t, res, &tok)
	ver, err := auth.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := ver.Verify(tok.Token, time.Now())
	if err != nil {
		t.Fatalf("the issued token does not verify: %v", err)
	}
	if claims.UserID != reg.ID || claims.Role != auth.RoleCustomer || !claims.ExpiresAt.Equal(tok.ExpiresAt) {
		t.Errorf("claims = %+v, expires_at %s", claims, tok.ExpiresAt)
	}
	if d := time.Until(tok.ExpiresAt); d < 55*time.Minute || d > time.Hour {
		t.Errorf("token expires in %s, want about 1h", d)
	}

	wrong := problem(t, h.login("ada@example.com", "wrong horse!"), http.StatusUnauthorized)
	unknown := problem(t, h.login("bob@example.com", "correct horse"), http.StatusUnauthorized)
	if wrong["detail"] != unknown["detail"] || wrong["type"] != unknown["type"] {
		t.Errorf("wrong password %v and unknown email %v answer differently", wrong, unknown)
	}
	problem(t, h.login("", ""), http.StatusUnprocessableEntity)

	var users int
	if err := h.Pool.QueryRow(context.Background(), "SELECT count(*) FROM users").Scan(&users); err != nil || users != 1 {
		t.Errorf("users = %d, %v; want 1", users, err)
	}
}

func TestAddressAndDeactivation(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := h.register("ada@example.com", "correct horse", "Ada")
	if e := h.nextEvent(); e.Type != contracts.TypeUserRegisteredV1 {
		t.Fatalf("first event %s", e.Type)
	}
	ada := identity{UserID: id, Role: "customer"}
	const addr = `{"name":"Ada","line1":"1 Main St","city":"Berlin","postal_code":"10115","country":"de"}`

	problem(t, h.do("GET", "/api/v1/me/address", ada, ""), http.StatusNotFound)
	res := h.do("PUT", "/api/v1/me/address", ada, addr)
	if res.Status != http.StatusOK {
		t.Fatalf("put address: %d %s", res.Status, res.Body)
	}
	var got map[string]string
	decode(t, res, &got)
	if got["country"] != "DE" || got["line1"] != "1 Main St" {
		t.Errorf("address = %v", got)
	}
	e := h.nextEvent()
	var changed contracts.UserAddressChangedV1
	if err := contracts.Decode(e.Type, e.Payload, &changed); err != nil || e.Type != contracts.TypeUserAddressChangedV1 {
		t.Fatalf("event %s: %v", e.Type, err)
	}
	if changed.UserID != id || changed.Address.Country != "DE" || changed.Address.PostalCode != "10115" {
		t.Errorf("address event = %+v", changed)
	}
	// The same address again publishes nothing: the next event is the
	// deactivation below.
	if res := h.do("PUT", "/api/v1/me/address", ada, addr); res.Status != http.StatusOK {
		t.Fatalf("put same address: %d %s", res.Status, res.Body)
	}
	if res := h.do("GET", "/api/v1/me/address", ada, ""); res.Status != http.StatusOK || !bytes.Contains(res.Body, []byte(`"city":"Berlin"`)) {
		t.Errorf("get address: %d %s", res.Status, res.Body)
	}

	admin := identity{UserID: "0190a6c4-0000-7000-8000-0000000000aa", Role: "admin"}
	problem(t, h.do("POST", "/api/v1/admin/users/"+id+"/deactivate", ada, `{}`), http.StatusForbidden)
	problem(t, h.do("POST", "/api/v1/admin/users/"+id+"/deactivate", anonymous, `{}`), http.StatusUnauthorized)
	problem(t, h.do("POST", "/api/v1/admin/users/0190a6c4-0000-7000-8000-0000000000ff/deactivate", admin, ``), http.StatusNotFound)
	problem(t, h.do("POST", "/api/v1/admin/users/not-a-uuid/deactivate", admin, ``), http.StatusNotFound)
	problem(t, h.do("POST", "/api/v1/admin/users/"+admin.UserID+"/deactivate", admin, ``), http.StatusConflict)

	for range 2 { // deactivating twice is one deactivation
		res = h.do("POST", "/api/v1/admin/users/"+id+"/deactivate", admin, `{"reason":"chargebacks"}`)
		if res.Status != http.StatusOK {
			t.Fatalf("deactivate: %d %s", res.Status, res.Body)
		}
	}
	var acct struct {
		Active        bool       `json:"active"`
		DeactivatedAt *time.Time `json:"deactivated_at"`
	}
	decode(t, res, &acct)
	if acct.Active || acct.DeactivatedAt == nil {
		t.Errorf("account = %+v", acct)
	}
	e = h.nextEvent()
	var deact contracts.UserDeactivatedV1
	if err := contracts.Decode(e.Type, e.Payload, &deact); err != nil || e.Type != contracts.TypeUserDeactivatedV1 {
		t.Fatalf("event after the repeated address = %s (%v); want user.deactivated.v1", e.Type, err)
	}
	if deact != (contracts.UserDeactivatedV1{UserID: id, Reason: "chargebacks"}) {
		t.Errorf("deactivation = %+v", deact)
	}

	p := problem(t, h.login("ada@example.com", "correct horse"), http.StatusUnauthorized)
	if !strings.HasSuffix(p["type"].(string), "/account-deactivated") {
		t.Errorf("login problem = %v", p)
	}
	problem(t, h.login("ada@example.com", "wrong horse!"), http.StatusUnauthorized)
	problem(t, h.do("PUT", "/api/v1/me/address", ada, strings.Replace(addr, "Berlin", "Hamburg", 1)), http.StatusUnauthorized)

	// The admin bootstrap: create, run again, and promote an existing customer.
	bob := h.register("bob@example.com", "bob password", "Bob")
	if e := h.nextEvent(); e.Type != contracts.TypeUserRegisteredV1 || e.AggregateID != bob {
		t.Fatalf("event %s for %s", e.Type, e.AggregateID)
	}
	ctx := context.Background()
	res1, err := user.CreateAdmin(ctx, h.Pool, user.AdminRequest{Email: "Root@Example.com", Password: "root password", PasswordHashing: cheap})
	if err != nil || !res1.Created {
		t.Fatalf("CreateAdmin = %+v, %v", res1, err)
	}
	e = h.nextEvent()
	if e.Type != contracts.TypeUserRegisteredV1 || e.AggregateID != res1.UserID {
		t.Errorf("create-admin event %s for %s", e.Type, e.AggregateID)
	}
	res2, err := user.CreateAdmin(ctx, h.Pool, user.AdminRequest{Email: "root@example.com", Password: "root password", PasswordHashing: cheap})
	if err != nil || res2.Created || res2.Promoted || res2.PasswordReset || res2.UserID != res1.UserID {
		t.Errorf("second CreateAdmin = %+v, %v", res2, err)
	}
	res3, err := user.CreateAdmin(ctx, h.Pool, user.AdminRequest{Email: "bob@example.com", Password: "bob password", PasswordHashing: cheap})
	if err != nil || !res3.Promoted || res3.PasswordReset || res3.UserID != bob {
		t.Errorf("promote = %+v, %v", res3, err)
	}
	if _, err := user.CreateAdmin(ctx, h.Pool, user.AdminRequest{Email: "ada@example.com", Password: "correct horse", PasswordHashing: cheap}); err == nil {
		t.Error("a deactivated account was made admin")
	}
	res = h.login("root@example.com", "root password")
	var tok struct{ Token string }
	decode(t, res, &tok)
	ver, err := auth.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := ver.Verify(tok.Token, time.Now()); err != nil || c.Role != auth.RoleAdmin {
		t.Errorf("admin token: %+v, %v", c, err)
	}
	res = h.login("bob@example.com", "bob password")
	decode(t, res, &tok)
	if c, err := ver.Verify(tok.Token, time.Now()); err != nil || c.Role != auth.RoleAdmin {
		t.Errorf("promoted token: %+v, %v", c, err)
	}
}

// TestBadInputChangesNothing sends malformed requests to every route and
// checks each is answered with a problem and leaves no trace.
func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := h.register("ada@example.com", "correct horse", "Ada")
	ada := identity{UserID: id, Role: "customer"}
	admin := identity{UserID: "0190a6c4-0000-7000-8000-0000000000aa", Role: "admin"}
	if res := h.do("PUT", "/api/v1/me/address", ada, `{"name":"Ada","line1":"1 Main St","city":"Berlin","postal_code":"10115","country":"DE"}`); res.Status != http.StatusOK {
		t.Fatalf("put address: %d %s", res.Status, res.Body)
	}
	before := h.snapshot()

	big := `{"email":"a@example.com","password":"correct horse","name":"` + strings.Repeat("x", 20<<10) + `"}`
	deactivate := "/api/v1/admin/users/" + id + "/deactivate"
	cases := []struct {
		name, method, path string
		who                identity
		body               string
		status             int
	}{
		{"register malformed", "POST", "/api/v1/auth/register", anonymous, `{"email":`, 400},
		{"register not an object", "POST", "/api/v1/auth/register", anonymous, `[1,2]`, 422},
		{"register empty", "POST", "/api/v1/auth/register", anonymous, ``, 400},
		{"register unknown field", "POST", "/api/v1/auth/register", anonymous, `{"email":"b@example.com","password":"correct horse","name":"B","role":"admin"}`, 422},
		{"register wrong type", "POST", "/api/v1/auth/register", anonymous, `{"email":"b@example.com","password":1234567890123,"name":"B"}`, 422},
		{"register duplicate key", "POST", "/api/v1/auth/register", anonymous, `{"email":"b@example.com","email":"c@example.com","password":"correct horse","name":"B"}`, 400},
		{"register case variant key", "POST", "/api/v1/auth/register", anonymous, `{"email":"b@example.com","Email":"c@example.com","password":"correct horse","name":"B"}`, 400},
		{"register two values", "POST", "/api/v1/auth/register", anonymous, `{"email":"b@example.com","password":"correct horse","name":"B"} {}`, 400},
		{"register oversized", "POST", "/api/v1/auth/register", anonymous, big, 413},
		{"register invalid email", "POST", "/api/v1/auth/register", anonymous, `{"email":"b@","password":"correct horse","name":"B"}`, 422},
		{"register short password", "POST", "/api/v1/auth/register", anonymous, `{"email":"b@example.com","password":"short","name":"B"}`, 422},
		{"register long password", "POST", "/api/v1/auth/register", anonymous, `{"email":"b@example.com","password":"` + strings.Repeat("p", 129) + `","name":"B"}`, 422},
		{"register missing name", "POST", "/api/v1/auth/register", anonymous, `{"email":"b@example.com","password":"correct horse"}`, 422},
		{"register null name", "POST", "/api/v1/auth/register", anonymous, `{"email":"b@example.com","password":"correct horse","name":null}`, 422},
		{"login malformed", "POST", "/api/v1/auth/login", anonymous, `{"email"`, 400},
		{"login unknown field", "POST", "/api/v1/auth/login", anonymous, `{"email":"ada@example.com","password":"correct horse","otp":1}`, 422},
		{"login wrong type", "POST", "/api/v1/auth/login", anonymous, `{"email":["ada@example.com"],"password":"correct horse"}`, 422},
		{"login oversized", "POST", "/api/v1/auth/login", anonymous, big, 413},
		{"address anonymous", "PUT", "/api/v1/me/address", anonymous, `{"name":"X","line1":"2 St","city":"C","postal_code":"1","country":"FR"}`, 401},
		{"address get anonymous", "GET", "/api/v1/me/address", anonymous, ``, 401},
		{"address malformed", "PUT", "/api/v1/me/address", ada, `{"name":"X",`, 400},
		{"address unknown field", "PUT", "/api/v1/me/address", ada, `{"name":"X","line1":"2 St","city":"C","postal_code":"1","country":"FR","planet":"Mars"}`, 422},
		{"address wrong type", "PUT", "/api/v1/me/address", ada, `{"name":"X","line1":"2 St","city":"C","postal_code":12345,"country":"FR"}`, 422},
		{"address invalid country", "PUT", "/api/v1/me/address", ada, `{"name":"X","line1":"2 St","city":"C","postal_code":"1","country":"France"}`, 422},
		{"address missing fields", "PUT", "/api/v1/me/address", ada, `{"country":"FR"}`, 422},
		{"address oversized", "PUT", "/api/v1/me/address", ada, `{"name":"` + strings.Repeat("x", 20<<10) + `"}`, 413},
		{"address of unknown user", "PUT", "/api/v1/me/address", identity{UserID: "0190a6c4-0000-7000-8000-0000000000ff", Role: "customer"}, `{"name":"X","line1":"2 St","city":"C","postal_code":"1","country":"FR"}`, 404},
		{"deactivate anonymous", "POST", deactivate, anonymous, ``, 401},
		{"deactivate as customer", "POST", deactivate, ada, ``, 403},
		{"deactivate malformed", "POST", deactivate, admin, `{"reason":`, 400},
		{"deactivate unknown field", "POST", deactivate, admin, `{"reason":"x","notify":true}`, 422},
		{"deactivate wrong type", "POST", deactivate, admin, `{"reason":42}`, 422},
		{"deactivate reason too long", "POST", deactivate, admin, `{"reason":"` + strings.Repeat("r", 501) + `"}`, 422},
		{"deactivate oversized", "POST", deactivate, admin, `{"reason":"` + strings.Repeat("r", 20<<10) + `"}`, 413},
	}
	for _, tc := range cases {
		res := h.do(tc.method, tc.path, tc.who, tc.body)
		if res.Status != tc.status || res.ContentType != "application/problem+json" {
			t.Errorf("%s: %d %s %s, want %d problem+json", tc.name, res.Status, res.ContentType, res.Body, tc.status)
		}
	}
	res := h.doRaw("POST", "/api/v1/auth/register", anonymous, `email=b@example.com`, "application/x-www-form-urlencoded")
	if res.Status != http.StatusUnsupportedMediaType {
		t.Errorf("form body: %d %s", res.Status, res.Body)
	}
	if after := h.snapshot(); after != before {
		t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
	}
}

// snapshot renders the service's whole state: accounts, addresses and the
// outbox (sent or not).
func (h *harness) snapshot() string {
	h.t.Helper()
	var s string
	err := h.Pool.QueryRow(context.Background(), `
		SELECT (SELECT coalesce(string_agg(id::text || email || name || password_hash || role || coalesce(deactivated_at::text, '-'), ',' ORDER BY id), '') FROM users)
		    || '|' || (SELECT coalesce(string_agg(user_id::text || line1 || city || country || updated_at::text, ','), '') FROM user_addresses)
		    || '|' || (SELECT count(*) FROM watermill_outbox)::text`).Scan(&s)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// TestConcurrentRegistrationsOfOneEmail checks the unique email under a race.
func TestConcurrentRegistrationsOfOneEmail(t *testing.T) {
	t.Parallel()
	h := start(t)
	const n = 8
	var wg sync.WaitGroup
	codes := make(chan int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := `{"email":"race@example.com","password":"correct horse","name":"Racer ` + string(rune('A'+i)) + `"}`
			req, _ := http.NewRequest("POST", h.BaseURL+"/api/v1/auth/register", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			codes <- res.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	created := 0
	for c := range codes {
		switch c {
		case http.StatusCreated:
			created++
		case http.StatusConflict:
		default:
			t.Errorf("status %d", c)
		}
	}
	if created != 1 {
		t.Errorf("%d registrations succeeded, want 1", created)
	}
	if e := h.nextEvent(); e.Type != contracts.TypeUserRegisteredV1 {
		t.Errorf("event %s", e.Type)
	}
	var events int
	if err := h.Pool.QueryRow(context.Background(), "SELECT count(*) FROM watermill_outbox").Scan(&events); err != nil || events != 1 {
		t.Errorf("outbox rows = %d, %v; want 1", events, err)
	}
}
