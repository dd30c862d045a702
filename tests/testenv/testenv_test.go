package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
)

func TestUniqueName(t *testing.T) {
	valid := regexp.MustCompile(`^t_[a-z0-9_]*_[0-9a-f]{8}$`)
	for _, name := range []string{
		"TestX",
		"TestOrder/placed_twice/Ünïcode & spaces",
		strings.Repeat("TestVeryLongName/", 10),
	} {
		got := uniqueName(name)
		if len(got) > maxNameLen || !valid.MatchString(got) {
			t.Errorf("uniqueName(%q) = %q, want at most %d characters matching %s", name, got, maxNameLen, valid)
		}
	}
	if a, b := uniqueName("TestX"), uniqueName("TestX"); a == b {
		t.Errorf("uniqueName returned %q twice", a)
	}
}

func TestUnquote(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:                "plain",
		`'a b'`:                "a b",
		`'it'\''s'`:            "it's",
		`"x\"y"`:               `x"y`,
		`'postgres://u:p@h/d'`: "postgres://u:p@h/d",
	} {
		if got := unquote(in); got != want {
			t.Errorf("unquote(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestNewDatabase(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("inner", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// Closed by a cleanup registered before NewDatabase's, so it runs
		// after the drop: the connection is still open when the database goes.
		var conn *pgx.Conn
		t.Cleanup(func() {
			if conn != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = conn.Close(ctx) // the drop already terminated it
			}
		})
		conn, err := pgx.Connect(ctx, NewDatabase(t))
		if err != nil {
			t.Fatalf("connect to new database: %v", err)
		}
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
			t.Fatalf("query current database: %v", err)
		}
		if !strings.HasPrefix(name, "t_testnewdatabase_inner_") {
			t.Errorf("database name = %q, want prefix t_testnewdatabase_inner_", name)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY)"); err != nil {
			t.Errorf("create table: %v", err)
		}
		// The open connection must not keep cleanup from dropping the database.
	})
	if name == "" {
		t.Fatal("inner test did not learn its database's name")
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminPostgresURL(t))
	if err != nil {
		t.Fatalf("connect as admin: %v", err)
	}
	defer admin.Close(ctx)
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatalf("query pg_database: %v", err)
	}
	if exists {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestNewVHost(t *testing.T) {
	t.Parallel()
	m := Management(t)
	var vhost string
	t.Run("inner", func(t *testing.T) {
		u := NewVHost(t)
		uri, err := amqp.ParseURI(u)
		if err != nil {
			t.Fatalf("parse %s: %v", redact(u), err)
		}
		vhost = uri.Vhost
		conn, err := amqp.Dial(u)
		if err != nil {
			t.Fatalf("dial new vhost: %v", err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatalf("open channel: %v", err)
		}
		q, err := ch.QueueDeclare("depth", true, false, false, false, nil)
		if err != nil {
			t.Fatalf("declare queue: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for range 3 {
			if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
				t.Fatalf("publish: %v", err)
			}
		}
		err = waitFor(30*time.Second, 200*time.Millisecond, func() error {
			n, err := m.QueueDepth(vhost, q.Name)
			if err != nil {
				return err
			}
			if n != 3 {
				return fmt.Errorf("depth is %d", n)
			}
			return nil
		})
		if err != nil {
			t.Errorf("QueueDepth(%s, %s) never reached 3: %v", vhost, q.Name, err)
		}
		if _, err := m.QueueDepth(vhost, "missing"); !errors.Is(err, ErrNotFound) {
			t.Errorf("QueueDepth of a missing queue: err = %v, want ErrNotFound", err)
		}
	})
	if vhost == "" {
		t.Fatal("inner test did not learn its vhost's name")
	}
	if err := m.do(http.MethodGet, "/api/vhosts/"+vhost, nil, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("vhost %s after its test ended: err = %v, want ErrNotFound", vhost, err)
	}
}

func TestStartPostgres(t *testing.T) {
	t.Parallel()
	began := time.Now()
	s := StartPostgres(t)
	t.Logf("private PostgreSQL ready in %s", time.Since(began).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, s.URL())
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	count := func() int {
		t.Helper()
		conn, err := pgx.Connect(ctx, s.URL())
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatalf("count rows: %v", err)
		}
		return n
	}

	if err := exec("CREATE TABLE t (id int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	s.Stop()
	if err := exec("SELECT 1"); err == nil {
		t.Errorf("query after Stop succeeded, want an error")
	}
	s.Start()
	if got := count(); got != 1 {
		t.Errorf("rows after Stop and Start = %d, want 1", got)
	}

	if err := exec("INSERT INTO t VALUES (2)"); err != nil {
		t.Fatalf("insert: %v", err)
	}
	s.Kill()
	if err := exec("SELECT 1"); err == nil {
		t.Errorf("query after Kill succeeded, want an error")
	}
	began = time.Now()
	s.Start()
	t.Logf("private PostgreSQL recovered in %s", time.Since(began).Round(time.Millisecond))
	if got := count(); got != 2 {
		t.Errorf("rows after Kill and Start = %d, want 2 (committed before the kill)", got)
	}
}

func TestStartRabbitMQ(t *testing.T) {
	t.Parallel()
	began := time.Now()
	s := StartRabbitMQ(t)
	t.Logf("private RabbitMQ node %s ready in %s", s.Node(), time.Since(began).Round(time.Millisecond))

	// publish declares a durable queue and publishes one persistent message
	// to it, waiting for the broker's confirm.
	publish := func() {
		t.Helper()
		conn, err := amqp.Dial(s.URL())
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatalf("open channel: %v", err)
		}
		if _, err := ch.QueueDeclare("durable", true, false, false, false, nil); err != nil {
			t.Fatalf("declare queue: %v", err)
		}
		if err := ch.Confirm(false); err != nil {
			t.Fatalf("enable confirms: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", "durable", false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("x")})
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		if ok, err := c.WaitContext(ctx); !ok || err != nil {
			t.Fatalf("publish not confirmed: ok=%v err=%v", ok, err)
		}
	}
	depth := func() int {
		t.Helper()
		conn, err := amqp.Dial(s.URL())
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatalf("open channel: %v", err)
		}
		q, err := ch.QueueDeclarePassive("durable", true, false, false, false, nil)
		if err != nil {
			t.Fatalf("inspect queue: %v", err)
		}
		return q.Messages
	}

	publish()
	s.FlushMetadata() // the queue was declared just now
	s.Kill()
	if conn, err := amqp.Dial(s.URL()); err == nil {
		conn.Close()
		t.Errorf("dial after Kill succeeded, want an error")
	}
	began = time.Now()
	s.Start()
	t.Logf("private RabbitMQ restarted after a kill in %s", time.Since(began).Round(time.Millisecond))
	if got := depth(); got != 1 {
		t.Errorf("messages after Kill and Start = %d, want 1 (confirmed before the kill)", got)
	}

	publish()
	began = time.Now()
	s.Stop()
	t.Logf("private RabbitMQ stopped in %s", time.Since(began).Round(time.Millisecond))
	s.Start()
	if got := depth(); got != 2 {
		t.Errorf("messages after Stop and Start = %d, want 2", got)
	}
}
