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

	"github.com/shopmesh/shopmesh/internal/wait"
	"github.com/shopmesh/shopmesh/outbox"
)

// WaitQuiet polls every interval until the system has nothing left to do,
// seen twice in a row (a message being applied is neither ready nor yet in
// an outbox): busy reports nothing (it names what is still going on, "" when
// nothing) and neither does Backlog. amqpURL is an administrator URL of the
// system's vhost. When ctx ends first the error says what was still busy.
func WaitQuiet(ctx context.Context, pools map[string]*pgxpool.Pool, amqpURL string, interval time.Duration,
	busy func(ctx context.Context) (string, error)) error {
	conn, err := amqp.DialConfig(amqpURL, amqp.Config{Dial: amqp.DefaultDial(outbox.HandshakeTimeout)})
	if err != nil {
		return fmt.Errorf("connect to the broker: %w", err)
	}
	defer conn.Close()
	quiet, last := 0, ""
	err = wait.Poll(ctx, interval, "system quiet", func(ctx context.Context) (bool, error) {
		what, err := busy(ctx)
		if err == nil && what == "" {
			what, err = Backlog(ctx, pools, conn)
		}
		if err != nil {
			return false, err
		}
		if quiet, last = quiet+1, what; what != "" {
			quiet = 0
		}
		return quiet == 2, nil
	})
	if err != nil && last != "" {
		return fmt.Errorf("%w (still busy: %s)", err, last)
	}
	return err
}

// Backlog says what the services whose databases are in pools still have to
// do, "" when nothing: an outbox row not yet sent, a scheduled event more
// than two seconds overdue, a message ready in a service's inbox queue or in
// its dead-letter queue. conn is an administrator connection to the
// system's vhost.
func Backlog(ctx context.Context, pools map[string]*pgxpool.Pool, conn *amqp.Connection) (string, error) {
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
