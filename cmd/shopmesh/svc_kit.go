package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/shopmesh/shopmesh/internal/servicekit"
	"github.com/shopmesh/shopmesh/outbox"
)

// serviceKit reads the part of a service's configuration every service has:
// its database and broker URLs (see env.serviceURLs), its HTTP address,
// SHOPMESH_<NAME>_HTTP_ADDR, defaultAddr when unset, and its consumers'
// linger, SHOPMESH_<NAME>_CONSUMER_LINGER (a Go duration; 0 never waits),
// the service's default when unset.
func serviceKit(e env, name, defaultAddr string) (servicekit.Config, error) {
	db, amqpURL, err := e.serviceURLs(name)
	if err != nil {
		return servicekit.Config{}, err
	}
	prefix := "SHOPMESH_" + strings.ToUpper(name)
	addr := e.getenv(prefix + "_HTTP_ADDR")
	if addr == "" {
		addr = defaultAddr
	}
	cfg := servicekit.Config{Name: name, DatabaseURL: db, AMQPURL: amqpURL, HTTPAddr: addr}
	if v := e.getenv(prefix + "_CONSUMER_LINGER"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > outbox.MaxLinger {
			return servicekit.Config{}, fmt.Errorf("%s_CONSUMER_LINGER: %q is not a duration from 0 to %v", prefix, v, outbox.MaxLinger)
		}
		cfg.Consumer = servicekit.ConsumerLinger(d)
	}
	return cfg, nil
}
