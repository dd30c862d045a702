package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/internal/platform"
)

// app is what every command shares.
type app struct {
	env    env
	logger *slog.Logger
	stdout io.Writer
}

// env is the process configuration. Administrator URLs are used to provision
// and operate; each service runs with its own credentials, given explicitly
// (SHOPMESH_<SERVICE>_DATABASE_URL, SHOPMESH_<SERVICE>_AMQP_URL) or derived
// from the administrator URLs and SHOPMESH_SECRET as `shopmesh migrate`
// provisioned them.
type env struct {
	admin  platform.Admin
	getenv func(string) string
}

func loadEnv(getenv func(string) string) env {
	return env{
		admin: platform.Admin{
			PostgresURL:   getenv("SHOPMESH_POSTGRES_URL"),
			AMQPURL:       getenv("SHOPMESH_AMQP_URL"),
			ManagementURL: getenv("SHOPMESH_AMQP_MANAGEMENT_URL"),
			Secret:        getenv("SHOPMESH_SECRET"),
		},
		getenv: getenv,
	}
}

func (e env) requireAdmin() error {
	var missing []string
	if e.admin.PostgresURL == "" {
		missing = append(missing, "SHOPMESH_POSTGRES_URL")
	}
	if e.admin.AMQPURL == "" {
		missing = append(missing, "SHOPMESH_AMQP_URL")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s not set (run `make up` and load .run/env, or point them at your servers)", strings.Join(missing, ", "))
	}
	return nil
}

// serviceURLs returns the database and broker URLs a service runs with.
func (e env) serviceURLs(name string) (db, amqp string, err error) {
	prefix := "SHOPMESH_" + strings.ToUpper(name) + "_"
	db, amqp = e.getenv(prefix+"DATABASE_URL"), e.getenv(prefix+"AMQP_URL")
	if db != "" && amqp != "" {
		return db, amqp, nil
	}
	if e.admin.Secret == "" {
		return "", "", fmt.Errorf("service %s: set %sDATABASE_URL and %sAMQP_URL, or SHOPMESH_SECRET with the administrator URLs", name, prefix, prefix)
	}
	if err := e.requireAdmin(); err != nil {
		return "", "", err
	}
	dDB, dAMQP, err := e.admin.Credentials(name)
	if err != nil {
		return "", "", err
	}
	if db == "" {
		db = dDB
	}
	if amqp == "" {
		amqp = dAMQP
	}
	return db, amqp, nil
}

// Services are the twelve shopmesh services (DESIGN.md §2).
var serviceNames = []string{"catalog", "cart", "order", "inventory", "payment", "shipping", "invoice",
	"customer", "user", "loyalty", "notification", "analytics"}

// serviceSpecs derives from the event registry which producers' exchanges
// each service reads, for provisioning its broker permissions.
func serviceSpecs(names []string) []platform.Service {
	reads := map[string]map[string]bool{}
	for _, t := range contracts.Registry() {
		for _, c := range t.Consumers {
			if reads[c] == nil {
				reads[c] = map[string]bool{}
			}
			reads[c][t.Producer] = true
		}
	}
	specs := make([]platform.Service, 0, len(names))
	for _, n := range names {
		var from []string
		for p := range reads[n] {
			from = append(from, p)
		}
		sort.Strings(from)
		specs = append(specs, platform.Service{Name: n, ReadsFrom: from})
	}
	return specs
}

// selectServices returns the named services, or all when none are named.
func selectServices(args []string) ([]string, error) {
	if len(args) == 0 {
		return serviceNames, nil
	}
	known := map[string]bool{}
	for _, n := range serviceNames {
		known[n] = true
	}
	var errs []error
	for _, a := range args {
		if !known[a] {
			errs = append(errs, fmt.Errorf("unknown service %q (known: %s)", a, strings.Join(serviceNames, ", ")))
		}
	}
	return args, errors.Join(errs...)
}
