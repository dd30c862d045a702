package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/url"
	"time"

	"github.com/shopmesh/shopmesh/internal/sysrun"
)

// newPrivateInfra starts a private PostgreSQL cluster and RabbitMQ node
// that scenarios may kill and restart.
func newPrivateInfra(ctx context.Context, logger *slog.Logger) (*sysrun.Infra, error) {
	return sysrun.NewPrivate(ctx, sysrun.PrivateOptions{
		Name:       "chaos",
		NodePrefix: "shopmesh-c",
		// Every service keeps a pool of up to 10 connections, some run twice.
		PostgresSettings: []string{"max_connections = 300", "shared_buffers = 64MB"},
		StartTimeout:     serverStartTimeout,
		Logger:           logger,
	})
}

// serverStartTimeout bounds how long a private server may take to become
// ready: longer than tests allow, as the harness boots them beside a build.
const serverStartTimeout = 90 * time.Second

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// withHost returns raw with its host replaced (a proxy's listen address).
func withHost(raw, host string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Host = host
	return u.String()
}

// randomHex returns n random bytes as 2n hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}
