package main

import (
	"strings"

	"github.com/shopmesh/shopmesh/internal/servicekit"
)

// serviceKit reads the part of a service's configuration every service has:
// its database and broker URLs (see env.serviceURLs) and its HTTP address,
// SHOPMESH_<NAME>_HTTP_ADDR, defaultAddr when unset.
func serviceKit(e env, name, defaultAddr string) (servicekit.Config, error) {
	db, amqpURL, err := e.serviceURLs(name)
	if err != nil {
		return servicekit.Config{}, err
	}
	addr := e.getenv("SHOPMESH_" + strings.ToUpper(name) + "_HTTP_ADDR")
	if addr == "" {
		addr = defaultAddr
	}
	return servicekit.Config{Name: name, DatabaseURL: db, AMQPURL: amqpURL, HTTPAddr: addr}, nil
}
