package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// ErrNotFound is returned by ManagementClient when the virtual host, user or
// queue asked about does not exist.
var ErrNotFound = errors.New("not found")

// ManagementClient is a small client of the RabbitMQ management HTTP API,
// authenticated as the administrator. Each call is bounded by a 30 s timeout
// rather than a context: it serves test code, which has no context to give.
type ManagementClient struct {
	base     *url.URL // scheme and host only
	user     string
	password string
	http     *http.Client
}

// NewManagementClient returns a client for the management API at rawURL,
// which carries the credentials (http://user:password@host:port).
func NewManagementClient(rawURL string) (*ManagementClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse management URL: %w", err)
	}
	if u.User == nil {
		return nil, fmt.Errorf("management URL %s has no credentials", u.Redacted())
	}
	pw, _ := u.User.Password()
	return &ManagementClient{
		base:     &url.URL{Scheme: u.Scheme, Host: u.Host},
		user:     u.User.Username(),
		password: pw,
		http:     &http.Client{Timeout: opTimeout},
	}, nil
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

// User returns the name of the administrator the client acts as.
func (m *ManagementClient) User() string { return m.user }

// CreateVHost creates a virtual host; an existing one is left as it is.
func (m *ManagementClient) CreateVHost(name string) error {
	if err := m.do(http.MethodPut, "/api/vhosts/"+url.PathEscape(name), struct{}{}, nil); err != nil {
		return fmt.Errorf("create vhost %s: %w", name, err)
	}
	return nil
}

// DeleteVHost deletes a virtual host and everything in it.
func (m *ManagementClient) DeleteVHost(name string) error {
	if err := m.do(http.MethodDelete, "/api/vhosts/"+url.PathEscape(name), nil, nil); err != nil {
		return fmt.Errorf("delete vhost %s: %w", name, err)
	}
	return nil
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
	body := map[string]string{"configure": configure, "write": write, "read": read}
	path := "/api/permissions/" + url.PathEscape(vhost) + "/" + url.PathEscape(user)
	if err := m.do(http.MethodPut, path, body, nil); err != nil {
		return fmt.Errorf("set permissions of %s in vhost %s: %w", user, vhost, err)
	}
	return nil
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
// JSON response into out (when not nil).
func (m *ManagementClient) do(method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	// path is already escaped; parsing the joined string keeps escaped
	// slashes in vhost names ("%2F") as they are.
	req, err := http.NewRequestWithContext(ctx, method, m.base.String()+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.SetBasicAuth(m.user, m.password)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := m.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		_, _ = io.Copy(io.Discard, resp.Body)
		return ErrNotFound
	}
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s response: %w", path, err)
	}
	return nil
}
