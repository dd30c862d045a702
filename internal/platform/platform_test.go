package platform

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/internal/rabbitmgmt"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

func TestCredentials(t *testing.T) {
	a := Admin{
		PostgresURL: "postgres://admin:pw@127.0.0.1:5442/postgres?sslmode=disable",
		AMQPURL:     "amqp://admin:pw@127.0.0.1:5682/shopmesh",
		Secret:      "secret",
	}
	pgURL, amqpURL, err := a.Credentials("order")
	if err != nil {
		t.Fatalf("Credentials: %v", err)
	}
	pg, err := url.Parse(pgURL)
	if err != nil {
		t.Fatalf("parse %s: %v", pgURL, err)
	}
	pgPassword, _ := pg.User.Password()
	if got, want := pg.User.Username(), "shopmesh_order"; got != want {
		t.Errorf("PostgreSQL user = %q, want %q", got, want)
	}
	if got, want := pg.Path, "/shopmesh_order"; got != want {
		t.Errorf("PostgreSQL database = %q, want %q", got, want)
	}
	if got, want := pg.Host+"?"+pg.RawQuery, "127.0.0.1:5442?sslmode=disable"; got != want {
		t.Errorf("PostgreSQL host and query = %q, want %q", got, want)
	}
	mq, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatalf("parse %s: %v", amqpURL, err)
	}
	mqPassword, _ := mq.User.Password()
	if got, want := mq.User.Username(), "shopmesh_order"; got != want {
		t.Errorf("AMQP user = %q, want %q", got, want)
	}
	if got, want := mq.Path, "/shopmesh"; got != want {
		t.Errorf("AMQP vhost path = %q, want %q", got, want)
	}
	for _, pw := range []string{pgPassword, mqPassword} {
		if _, err := hex.DecodeString(pw); len(pw) != 32 || err != nil {
			t.Errorf("password %q: want 32 hex digits", pw)
		}
	}
	if pgPassword == mqPassword {
		t.Errorf("PostgreSQL and AMQP passwords are equal, want them derived separately")
	}
	again, againMQ, err := a.Credentials("order")
	if err != nil || again != pgURL || againMQ != amqpURL {
		t.Errorf("Credentials is not deterministic: %q, %q then %q, %q (%v)", pgURL, amqpURL, again, againMQ, err)
	}
	other, otherMQ, err := Admin{PostgresURL: a.PostgresURL, AMQPURL: a.AMQPURL, Secret: "other"}.Credentials("order")
	if err != nil {
		t.Fatalf("Credentials with another secret: %v", err)
	}
	if other == pgURL || otherMQ == amqpURL {
		t.Errorf("a different secret gave the same credentials")
	}
	for _, bad := range []string{"", "Order", "1st", "a-b", "a.b", strings.Repeat("x", 41)} {
		if _, _, err := a.Credentials(bad); err == nil {
			t.Errorf("Credentials(%q): want an error", bad)
		}
	}
}

func TestPermissions(t *testing.T) {
	c, w, r := Permissions(Service{Name: "billing", ReadsFrom: []string{"order", "cart", "order"}})
	if want := `^shopmesh\.billing(\..*)?$`; c != want || w != want {
		t.Errorf("configure, write = %q, %q, want %q", c, w, want)
	}
	if want := `^(shopmesh\.billing(\..*)?|shopmesh\.(cart|order))$`; r != want {
		t.Errorf("read = %q, want %q", r, want)
	}
	if _, _, r := Permissions(Service{Name: "user"}); r != `^shopmesh\.user(\..*)?$` {
		t.Errorf("read without producers = %q", r)
	}
}

func TestScramMatches(t *testing.T) {
	// Made by PostgreSQL 15: CREATE ROLE r PASSWORD 'pencil';
	// SELECT rolpassword FROM pg_authid WHERE rolname = 'r'.
	const verifier = "SCRAM-SHA-256$4096:W8XPjdMOn3vRQokyx2ZKkw==$" +
		"9faHnH8mNq0qTsP/NH8Jg3e+SgapF/w4rOZpVXvMC7U=:X5jLy6oF0S7eUEt+8gAai7VGVkQh5mHlMNGoxNXpglM="
	for _, c := range []struct {
		verifier, password string
		want               bool
	}{
		{verifier, "pencil", true},
		{verifier, "pen", false},
		{"md5c6e4a0b4b4d1c8ab1e0e0d7e0ad4ae55", "pencil", false},
		{"SCRAM-SHA-256$x:y$z:w", "pencil", false},
	} {
		if got := scramMatches(c.verifier, c.password); got != c.want {
			t.Errorf("scramMatches(%.30q..., %q) = %v, want %v", c.verifier, c.password, got, c.want)
		}
	}
}

// TestProvision provisions two services on the shared servers, one reading
// the other's events, and checks what each may and may not do. Roles and
// users are cluster-wide, so the services get random names and are removed at
// the end.
func TestProvision(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	prefix := "t" + randomHex(t, 4)
	orders, billing := prefix+"_orders", prefix+"_billing"
	services := []Service{{Name: orders}, {Name: billing, ReadsFrom: []string{orders}}}
	a := Admin{
		PostgresURL:   testenv.AdminPostgresURL(t),
		AMQPURL:       testenv.NewVHost(t),
		ManagementURL: testenv.ManagementURL(t),
		Secret:        randomHex(t, 32),
	}
	t.Cleanup(func() { deprovision(t, a, services) })

	if err := Provision(ctx, a, services); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	before := secrets(ctx, t, a, orders)
	if err := Provision(ctx, a, services); err != nil {
		t.Fatalf("Provision again: %v", err)
	}
	if after := secrets(ctx, t, a, orders); after != before {
		t.Errorf("provisioning again rewrote the stored passwords (%v, then %v), want no change", before, after)
	}
	ordersPG, ordersMQ := credentials(t, a, orders)
	billingPG, billingMQ := credentials(t, a, billing)

	t.Run("postgres", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, ordersPG)
		if err != nil {
			t.Fatalf("orders connect to its own database: %v", err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "CREATE TABLE orders (id bigint PRIMARY KEY)"); err != nil {
			t.Errorf("orders create a table in its own database: %v", err)
		}
		wrongDB := withDatabase(t, ordersPG, RoleName(billing))
		if conn, err := pgx.Connect(ctx, wrongDB); err == nil {
			conn.Close(ctx)
			t.Errorf("orders connected to billing's database, want permission denied")
		} else if code := sqlState(err); code != "42501" {
			t.Errorf("orders connect to billing's database: %v (SQLSTATE %q), want SQLSTATE 42501", err, code)
		}
		if conn, err := pgx.Connect(ctx, billingPG); err != nil {
			t.Errorf("billing connect to its own database: %v", err)
		} else {
			conn.Close(ctx)
		}
	})

	t.Run("rabbitmq", func(t *testing.T) {
		ordersCh := channel(t, ordersMQ)
		if err := ordersCh.ExchangeDeclare("shopmesh."+orders, "topic", true, false, false, false, nil); err != nil {
			t.Fatalf("orders declare its exchange: %v", err)
		}
		if _, err := ordersCh.QueueDeclare("shopmesh."+orders+".retry", true, false, false, false, nil); err != nil {
			t.Fatalf("orders declare its queue: %v", err)
		}
		if err := ordersCh.QueueBind("shopmesh."+orders+".retry", "#", "shopmesh."+orders, false, nil); err != nil {
			t.Fatalf("orders bind its queue to its exchange: %v", err)
		}
		err := ordersCh.ExchangeDeclare("shopmesh."+billing, "topic", true, false, false, false, nil)
		wantAccessRefused(t, "orders declare billing's exchange", err)

		billingCh := channel(t, billingMQ)
		if err := billingCh.ExchangeDeclare("shopmesh."+billing, "topic", true, false, false, false, nil); err != nil {
			t.Fatalf("billing declare its exchange: %v", err)
		}
		q := "shopmesh." + billing + "." + orders
		if _, err := billingCh.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatalf("billing declare its queue: %v", err)
		}
		if err := billingCh.QueueBind(q, "order.placed.v1", "shopmesh."+orders, false, nil); err != nil {
			t.Errorf("billing bind its queue to orders' exchange (it reads from orders): %v", err)
		}

		ordersCh = channel(t, ordersMQ) // the refusal closed the first channel
		if _, err := ordersCh.QueueDeclare("shopmesh."+orders+".billing", true, false, false, false, nil); err != nil {
			t.Fatalf("orders declare its queue: %v", err)
		}
		err = ordersCh.QueueBind("shopmesh."+orders+".billing", "#", "shopmesh."+billing, false, nil)
		wantAccessRefused(t, "orders bind to billing's exchange (it does not read from billing)", err)

		ordersCh = channel(t, ordersMQ)
		closed := ordersCh.NotifyClose(make(chan *amqp.Error, 1))
		err = ordersCh.PublishWithContext(ctx, "", "shopmesh."+orders+".retry", false, false, amqp.Publishing{Body: []byte("x")})
		if err == nil {
			select {
			case amqpErr := <-closed:
				if amqpErr != nil {
					err = amqpErr
				}
			case <-time.After(10 * time.Second):
			}
		}
		wantAccessRefused(t, "orders publish to the default exchange", err)
	})

	t.Run("rotate secret", func(t *testing.T) {
		rotated := a
		rotated.Secret = randomHex(t, 32)
		if err := Provision(ctx, rotated, services); err != nil {
			t.Fatalf("Provision with a new secret: %v", err)
		}
		newPG, newMQ := credentials(t, rotated, orders)
		if conn, err := pgx.Connect(ctx, newPG); err != nil {
			t.Errorf("connect to PostgreSQL with the new password: %v", err)
		} else {
			conn.Close(ctx)
		}
		if conn, err := pgx.Connect(ctx, ordersPG); err == nil {
			conn.Close(ctx)
			t.Errorf("connected to PostgreSQL with the old password, want a refusal")
		} else if code := sqlState(err); code != "28P01" {
			t.Errorf("connect with the old password: %v (SQLSTATE %q), want SQLSTATE 28P01", err, code)
		}
		if conn, err := amqp.Dial(newMQ); err != nil {
			t.Errorf("connect to RabbitMQ with the new password: %v", err)
		} else {
			conn.Close()
		}
		conn, err := amqp.Dial(ordersMQ)
		if err == nil {
			conn.Close()
		}
		wantAccessRefused(t, "connect to RabbitMQ with the old password", err)
	})
}

// secrets returns the stored password hashes of a service's role and user,
// which change whenever a password is set, even to the same value.
func secrets(ctx context.Context, t *testing.T, a Admin, service string) [2]string {
	t.Helper()
	conn, err := pgx.Connect(ctx, a.PostgresURL)
	if err != nil {
		t.Fatalf("connect as admin: %v", err)
	}
	defer conn.Close(ctx)
	var s [2]string
	if err := conn.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", RoleName(service)).Scan(&s[0]); err != nil {
		t.Fatalf("read role password: %v", err)
	}
	m, err := rabbitmgmt.New(a.ManagementURL)
	if err != nil {
		t.Fatalf("%v", err)
	}
	var u struct {
		Hash string `json:"password_hash"`
	}
	if err := m.Do(ctx, "GET", "/api/users/"+RoleName(service), nil, &u); err != nil {
		t.Fatalf("read user: %v", err)
	}
	s[1] = u.Hash
	return s
}

func credentials(t *testing.T, a Admin, service string) (pgURL, amqpURL string) {
	t.Helper()
	pgURL, amqpURL, err := a.Credentials(service)
	if err != nil {
		t.Fatalf("Credentials(%s): %v", service, err)
	}
	return pgURL, amqpURL
}

func channel(t *testing.T, amqpURL string) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatalf("dial as service: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	return ch
}

func wantAccessRefused(t *testing.T, what string, err error) {
	t.Helper()
	var amqpErr *amqp.Error
	if !errors.As(err, &amqpErr) || amqpErr.Code != amqp.AccessRefused {
		t.Errorf("%s: err = %v, want ACCESS_REFUSED (%d)", what, err, amqp.AccessRefused)
	}
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func withDatabase(t *testing.T, raw, database string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse %s: %v", raw, err)
	}
	u.Path = "/" + database
	return u.String()
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}

// deprovision removes what Provision created for services.
func deprovision(t *testing.T, a Admin, services []Service) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, a.PostgresURL)
	if err != nil {
		t.Errorf("cleanup: connect as admin: %v", err)
		return
	}
	defer conn.Close(ctx)
	m, err := rabbitmgmt.New(a.ManagementURL)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	for _, s := range services {
		ident := pgx.Identifier{RoleName(s.Name)}.Sanitize()
		for _, sql := range []string{
			"DROP DATABASE IF EXISTS " + ident + " WITH (FORCE)",
			"DROP ROLE IF EXISTS " + ident,
		} {
			if _, err := conn.Exec(ctx, sql); err != nil {
				t.Errorf("cleanup: %s: %v", sql, err)
			}
		}
		err := m.Do(ctx, "DELETE", "/api/users/"+url.PathEscape(RoleName(s.Name)), nil, nil)
		if err != nil && !errors.Is(err, rabbitmgmt.ErrNotFound) {
			t.Errorf("cleanup: delete user %s: %v", RoleName(s.Name), err)
		}
	}
}
