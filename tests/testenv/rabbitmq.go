package testenv

import (
	"context"
	"log/slog"
	"testing"

	"github.com/shopmesh/shopmesh/internal/localserver"
)

// RabbitMQServer is a private RabbitMQ node for one test, which the test may
// stop, kill and start again. It has no plugins (no management API), listens
// for AMQP on a free port on 127.0.0.1, has only virtual host "/", and only
// an administrator user: guest is never created.
type RabbitMQServer struct {
	t    testing.TB
	node *localserver.RabbitMQ
}

// StartRabbitMQ starts a private node and waits until it accepts AMQP
// connections. When the test ends the node is killed and its files removed.
// A node boots in a few seconds, from a trimmed copy of the RabbitMQ
// installation (see localserver.StartRabbitMQ).
func StartRabbitMQ(t testing.TB) *RabbitMQServer {
	t.Helper()
	opts := localserver.RabbitMQOptions{
		NodePrefix: "shopmesh-t",
		Logger:     slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
	node := startPrivate(t, "RabbitMQ", "shopmesh-rabbitmq-", func(ctx context.Context, dir string) (*localserver.RabbitMQ, error) {
		return localserver.StartRabbitMQ(ctx, dir, opts)
	})
	return &RabbitMQServer{t: t, node: node}
}

// URL returns the administrator's AMQP URL for virtual host "/".
func (s *RabbitMQServer) URL() string { return s.node.URL() }

// Node returns the Erlang node name, e.g. for log messages.
func (s *RabbitMQServer) Node() string { return s.node.Node() }

// Start starts the stopped or killed node on its ports and waits until it
// accepts AMQP connections. It fails the test when it does not within a
// minute.
func (s *RabbitMQServer) Start() {
	s.t.Helper()
	if err := s.node.Start(context.Background()); err != nil {
		s.t.Fatalf("testenv: private RabbitMQ: %v", err)
	}
}

// Stop shuts the node down gracefully (SIGTERM) and waits for it to exit.
func (s *RabbitMQServer) Stop() {
	s.t.Helper()
	if err := s.node.Stop(); err != nil {
		s.t.Errorf("testenv: stop private RabbitMQ: %v", err)
	}
}

// FlushMetadata makes the node write its recent metadata changes (declared
// or deleted queues, exchanges and bindings) to disk, so that a Kill right
// after declaring a durable queue does not lose it; see
// localserver.RabbitMQ.FlushMetadata. A test that kills the node right after
// declaring topology calls this in between. It takes about a second.
func (s *RabbitMQServer) FlushMetadata() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.node.FlushMetadata(ctx); err != nil {
		s.t.Fatalf("testenv: %v", err)
	}
}

// Kill SIGKILLs the node's Erlang VM (and its process group) at once, as a
// crash would, and waits for it to be gone. No other node is touched.
func (s *RabbitMQServer) Kill() {
	s.t.Helper()
	s.node.Kill()
}
