package testenv

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/internal/rabbitmgmt"
)

// ErrNotFound is returned by ManagementClient when the virtual host, user or
// queue asked about does not exist.
var ErrNotFound = rabbitmgmt.ErrNotFound

// ManagementClient is a small client of the RabbitMQ management HTTP API,
// authenticated as the administrator. Each call is bounded by mgmtTimeout
// rather than a context: it serves test code, which has no context to give.
type ManagementClient struct {
	api *rabbitmgmt.Client
}

// NewManagementClient returns a client for the management API at rawURL,
// which carries the credentials (http://user:password@host:port).
func NewManagementClient(rawURL string) (*ManagementClient, error) {
	api, err := rabbitmgmt.New(rawURL)
	if err != nil {
		return nil, err
	}
	return &ManagementClient{api: api}, nil
}

// Management returns a client for the shared node's management API, failing
// the test when it is not configured or does not answer.
func Management(t testing.TB) *ManagementClient {
	t.Helper()
	raw := loadConfig().managementURL
	if raw == "" {
		t.Fatalf("testenv: no RabbitMQ management API configured (SHOPMESH_AMQP_MANAGEMENT_URL, .run/env); %s", startHint)
	}
	m, err := NewManagementClient(raw)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := m.do(http.MethodGet, "/api/whoami", nil, nil); err != nil {
		t.Fatalf("testenv: RabbitMQ management API at %s is not reachable: %v; %s", redact(raw), err, startHint)
	}
	return m
}

// mgmtTimeout bounds one call, retries included (see rabbitmgmt.Client.Do):
// a starved node has taken more than 30 s to delete a virtual host.
const mgmtTimeout = 3 * time.Minute

// User returns the name of the administrator the client acts as.
func (m *ManagementClient) User() string { return m.api.User() }

// NodePID is the OS process id of the node, when it runs on this machine.
func (m *ManagementClient) NodePID() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), mgmtTimeout)
	defer cancel()
	return m.api.LocalNodePID(ctx)
}

// CreateVHost creates a virtual host; an existing one is left as it is.
func (m *ManagementClient) CreateVHost(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), mgmtTimeout)
	defer cancel()
	return m.api.CreateVHost(ctx, name)
}

// DeleteVHost deletes a virtual host and everything in it.
func (m *ManagementClient) DeleteVHost(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), mgmtTimeout)
	defer cancel()
	return m.api.DeleteVHost(ctx, name)
}

// CreateUser creates a user, or updates the password and tags of an existing
// one. tags is comma-separated, e.g. "administrator", or empty.
func (m *ManagementClient) CreateUser(name, password, tags string) error {
	body := map[string]string{"password": password, "tags": tags}
	if err := m.do(http.MethodPut, "/api/users/"+url.PathEscape(name), body, nil); err != nil {
		return fmt.Errorf("create user %s: %w", name, err)
	}
	return nil
}

// DeleteUser deletes a user.
func (m *ManagementClient) DeleteUser(name string) error {
	if err := m.do(http.MethodDelete, "/api/users/"+url.PathEscape(name), nil, nil); err != nil {
		return fmt.Errorf("delete user %s: %w", name, err)
	}
	return nil
}

// SetPermissions sets user's configure, write and read regular expressions
// in vhost.
func (m *ManagementClient) SetPermissions(vhost, user, configure, write, read string) error {
	ctx, cancel := context.WithTimeout(context.Background(), mgmtTimeout)
	defer cancel()
	return m.api.SetPermissions(ctx, vhost, user, rabbitmgmt.Permissions{Configure: configure, Write: write, Read: read})
}

// QueueDepth returns the number of messages in a queue, ready plus
// unacknowledged. The management API refreshes these counts periodically
// (every second on the local platform), so poll rather than read once.
func (m *ManagementClient) QueueDepth(vhost, queue string) (int, error) {
	var q struct {
		Ready   *int `json:"messages_ready"`
		Unacked *int `json:"messages_unacknowledged"`
	}
	path := "/api/queues/" + url.PathEscape(vhost) + "/" + url.PathEscape(queue)
	if err := m.do(http.MethodGet, path, nil, &q); err != nil {
		return 0, fmt.Errorf("depth of queue %s in vhost %s: %w", queue, vhost, err)
	}
	n := 0
	if q.Ready != nil {
		n += *q.Ready
	}
	if q.Unacked != nil {
		n += *q.Unacked
	}
	return n, nil
}

// do sends one request with a JSON body (when in is not nil) and decodes a
// JSON response into out (when not nil), within mgmtTimeout.
func (m *ManagementClient) do(method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), mgmtTimeout)
	defer cancel()
	return m.api.Do(ctx, method, path, in, out)
}
