package testenv

import (
	"errors"
	"net/url"
	"testing"
)

// AdminAMQPURL returns the AMQP URL of the shared RabbitMQ node's
// administrator, in the platform's own virtual host. Tests should prefer a
// virtual host of their own from NewVHost.
func AdminAMQPURL(t testing.TB) string {
	t.Helper()
	u := loadConfig().amqpURL
	if u == "" {
		t.Fatalf("testenv: no RabbitMQ configured (SHOPMESH_AMQP_URL, .run/env); %s", startHint)
	}
	return u
}

// ManagementURL returns the URL, with administrator credentials, of the
// shared RabbitMQ node's management API, failing the test when it does not
// answer.
func ManagementURL(t testing.TB) string {
	t.Helper()
	Management(t) // fails the test when unreachable
	return loadConfig().managementURL
}

// NewVHost creates a virtual host named after the test (t_<name>_<random>) on
// the shared RabbitMQ node, gives the administrator full permissions on it,
// and returns an administrator AMQP URL for it. The virtual host, with its
// exchanges and queues, is deleted when the test ends.
func NewVHost(t testing.TB) string {
	t.Helper()
	m := Management(t)
	base, err := url.Parse(AdminAMQPURL(t))
	if err != nil {
		t.Fatalf("testenv: parse AMQP URL: %v", err)
	}
	name := UniqueName(t)
	if err := m.CreateVHost(name); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := m.DeleteVHost(name); err != nil && !errors.Is(err, ErrNotFound) {
			t.Errorf("testenv: %v", err)
		}
	})
	users := []string{m.User()}
	if u := base.User.Username(); u != "" && u != m.User() {
		users = append(users, u) // servers configured by hand may use two admins
	}
	for _, u := range users {
		if err := m.SetPermissions(name, u, ".*", ".*", ".*"); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	return withVHost(base, name)
}

// withVHost returns u with its path set to the escaped vhost name.
func withVHost(u *url.URL, vhost string) string {
	v := *u
	v.Path = "/" + vhost
	v.RawPath = "/" + url.PathEscape(vhost)
	return v.String()
}
