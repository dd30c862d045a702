package servicekit_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/tests/testenv"
)

// A Node migrates its database, serves the API beside /metrics, /healthz and
// /readyz, relays what the service publishes, and stops when ctx ends.
func TestNodeServesAndRelays(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan string, 1)
	node, err := servicekit.Open(ctx, servicekit.Config{
		Name: "widget", DatabaseURL: testenv.NewDatabase(t), AMQPURL: testenv.NewVHost(t),
		Migrations: os.DirFS("testdata/migrations"), RelayPollInterval: 50 * time.Millisecond,
		OnListen: func(addr string) { addrs <- addr },
	})
	if err != nil {
		t.Fatal(err)
	}
	api := http.NewServeMux()
	api.HandleFunc("POST /widgets/{id}", func(w http.ResponseWriter, r *http.Request) {
		err := node.Outbox.WithTx(r.Context(), node.Pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(r.Context(), `INSERT INTO widgets (id) VALUES ($1)`, r.PathValue("id")); err != nil {
				return err
			}
			return node.Outbox.Publish(r.Context(), tx, outbox.Event{Type: "widget.created.v1", AggregateID: r.PathValue("id"), Payload: map[string]string{"id": r.PathValue("id")}})
		})
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	done := make(chan error, 1)
	go func() { done <- node.Run(ctx, api) }()
	var base string
	select {
	case a := <-addrs:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("Run returned early: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("node did not start listening")
	}

	for path, want := range map[string]int{"/healthz": 204, "/readyz": 204} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, want)
		}
	}
	// With no queue bound the event stays pending (mandatory routing), which
	// the backlog gauge must show.
	resp, err := http.Post(base+"/widgets/w1", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST = %d", resp.StatusCode)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), `shopmesh_outbox_pending{service="widget"} 1`) &&
			strings.Contains(string(body), `shopmesh_relay_unroutable_total{service="widget"}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed the pending, unroutable event:\n%s", grep(string(body), "shopmesh_"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("node did not stop")
	}
}

func grep(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Every service's pool counts its round trips to PostgreSQL by kind, each
// service under its own label when several share a registry (serve all):
// a statement on its own is one, a batch is one however many statements it
// carries.
func TestNodesCountTheirRoundTrips(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg := prometheus.NewRegistry()
	metrics, err := outbox.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	open := func(name string) *servicekit.Node {
		node, err := servicekit.Open(ctx, servicekit.Config{
			Name: name, DatabaseURL: testenv.NewDatabase(t), AMQPURL: testenv.NewVHost(t), Registry: reg, Metrics: metrics,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(node.Close)
		return node
	}
	a, b := open("alpha"), open("beta")
	trips := func(service, kind string) float64 {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() != servicekit.RoundTripsMetric {
				continue
			}
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["service"] == service && labels["kind"] == kind {
					return m.GetCounter().GetValue()
				}
			}
		}
		t.Fatalf("no %s{service=%q,kind=%q}", servicekit.RoundTripsMetric, service, kind)
		return 0
	}
	statements, batches, beta := trips("alpha", "statement"), trips("alpha", "batch"), trips("beta", "statement")
	if _, err := a.Pool.Exec(ctx, `SELECT $1::int`, 1); err != nil {
		t.Fatal(err)
	}
	batch := &pgx.Batch{}
	for i := range 3 {
		batch.Queue(`SELECT $1::int`, i)
	}
	if err := a.Pool.SendBatch(ctx, batch).Close(); err != nil {
		t.Fatal(err)
	}
	if got := trips("alpha", "statement") - statements; got != 1 {
		t.Errorf("alpha sent one statement: %v counted", got)
	}
	if got := trips("alpha", "batch") - batches; got != 1 {
		t.Errorf("alpha sent one batch of three statements: %v counted", got)
	}
	if got := trips("beta", "statement") - beta; got != 0 {
		t.Errorf("beta sent nothing: %v counted", got)
	}
	if _, err := b.Pool.Exec(ctx, `SELECT $1::int`, 1); err != nil {
		t.Fatal(err)
	}
	if got := trips("beta", "statement") - beta; got != 1 {
		t.Errorf("beta sent one statement: %v counted", got)
	}
}
