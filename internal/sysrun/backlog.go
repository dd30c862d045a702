package sysrun

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/outbox"
)

// Backlog says what the services whose databases are in pools still have to
// do, "" when nothing: an outbox row not yet sent, a scheduled event more
// than two seconds overdue, a message ready in a service's inbox queue or in
// its dead-letter queue. amqpURL is an administrator URL of the system's
// vhost. A caller waiting for a system to go quiet should see "" twice in a
// row: a message being applied is neither ready nor yet in an outbox.
func Backlog(ctx context.Context, pools map[string]*pgxpool.Pool, amqpURL string) (string, error) {
	conn, err := amqp.DialConfig(amqpURL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return "", fmt.Errorf("connect to the broker: %w", err)
	}
	defer conn.Close()
	for _, svc := range slices.Sorted(maps.Keys(pools)) {
		pool := pools[svc]
		st, err := outbox.ReadStats(ctx, pool)
		if err != nil {
			return "", fmt.Errorf("%s outbox: %w", svc, err)
		}
		if st.Pending > 0 {
			return fmt.Sprintf("%s outbox holds %d unsent events", svc, st.Pending), nil
		}
		var overdue int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox_scheduled WHERE due_at < now() - interval '2 seconds'`).Scan(&overdue); err != nil {
			return "", fmt.Errorf("%s scheduled events: %w", svc, err)
		}
		if overdue > 0 {
			return fmt.Sprintf("%s has %d overdue scheduled events", svc, overdue), nil
		}
		q := outbox.QueueName(svc, "inbox")
		for _, name := range []string{q, q + ".dlq"} {
			n, err := readyMessages(conn, name)
			if err != nil {
				return "", fmt.Errorf("%s queue %s: %w", svc, name, err)
			}
			if n > 0 {
				return fmt.Sprintf("%s holds %d messages", name, n), nil
			}
		}
	}
	return "", nil
}

// readyMessages returns the messages ready in queue, 0 when there is no
// such queue (a service that consumes nothing).
func readyMessages(conn *amqp.Connection, queue string) (int, error) {
	ch, err := conn.Channel() // a failed passive declare closes its channel
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	var aerr *amqp.Error
	if errors.As(err, &aerr) && aerr.Code == amqp.NotFound {
		return 0, nil
	}
	return q.Messages, err
}
