package servicekit

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// RoundTripsMetric counts the requests a service sent to PostgreSQL and
// waited on, by kind. A round trip costs both sides more CPU than the small
// statements it carries, so this count per request or per message is the
// figure to watch when a change is meant to save work in the database.
const RoundTripsMetric = "shopmesh_postgres_round_trips_total"

// roundTrips is a pgx tracer that counts round trips: a statement sent on
// its own (BEGIN and COMMIT included), a batch however many statements it
// carries, a COPY. pgx's statement preparation, once per statement and
// connection, and the pool's liveness pings are not counted.
type roundTrips struct {
	statement, batch, copy prometheus.Counter
}

// newRoundTrips returns the tracer of service's pool, registering the
// counter with reg or sharing the one a service in the same process
// registered there.
func newRoundTrips(reg prometheus.Registerer, service string) (*roundTrips, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: RoundTripsMetric,
		Help: "Requests sent to PostgreSQL and waited on: a statement, a batch of statements, a COPY.",
	}, []string{"service", "kind"})
	if err := reg.Register(vec); err != nil {
		var already prometheus.AlreadyRegisteredError
		if !errors.As(err, &already) {
			return nil, err
		}
		shared, ok := already.ExistingCollector.(*prometheus.CounterVec)
		if !ok {
			return nil, err
		}
		vec = shared
	}
	return &roundTrips{
		statement: vec.WithLabelValues(service, "statement"),
		batch:     vec.WithLabelValues(service, "batch"),
		copy:      vec.WithLabelValues(service, "copy"),
	}, nil
}

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.statement.Inc()
	return ctx
}

func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.batch.Inc()
	return ctx
}

func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (r *roundTrips) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	r.copy.Inc()
	return ctx
}

func (r *roundTrips) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}
