// Package rabbitmgmt is the one client of the RabbitMQ management HTTP API:
// provisioning, the test environment and the system runners use it.
package rabbitmgmt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shopmesh/shopmesh/internal/procfs"
	"github.com/shopmesh/shopmesh/internal/wait"
)

// ErrNotFound is what Client returns for HTTP 404.
var ErrNotFound = errors.New("not found")

// Client acts on the management API as the user of its URL.
type Client struct {
	base     string // scheme://host:port
	user     string
	password string
	http     *http.Client
	sleep    func(context.Context, time.Duration) error // between retries
}

// New parses the management API's URL, credentials included.
func New(raw string) (*Client, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse management URL: %w", err)
	}
	if u.User == nil {
		return nil, fmt.Errorf("management URL %s has no credentials", u.Redacted())
	}
	pw, _ := u.User.Password()
	return &Client{
		base:     u.Scheme + "://" + u.Host + strings.TrimRight(u.Path, "/"),
		user:     u.User.Username(),
		password: pw,
		http:     &http.Client{Timeout: 30 * time.Second},
		sleep:    wait.Sleep,
	}, nil
}

// User is the name the client acts as.
func (m *Client) User() string { return m.user }

// Do sends a request with in as JSON body (unless nil) and decodes the JSON
// response into out (unless nil). path must be escaped already; a 404 is
// ErrNotFound, another answer of 300 or more a *StatusError.
//
// A GET, PUT or DELETE (every call of this package is one, and they are
// idempotent) that times out, loses its connection or is answered 5xx is
// sent again, after 250 ms doubling up to 5 s, until ctx ends, or for up to
// RetryFor when ctx has no deadline: a node that is busy answers late (on a
// starved two-core machine deleting a virtual host's quorum queues has taken
// over 30 s). A refused connection is not retried: nothing listens there.
func (m *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body []byte // nil: no body
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = b
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, RetryFor)
		defer cancel()
	}
	idempotent := method == http.MethodGet || method == http.MethodPut || method == http.MethodDelete
	backoff := 250 * time.Millisecond
	for {
		err := m.once(ctx, method, path, body, out)
		if err == nil || !idempotent || !transient(err) || ctx.Err() != nil {
			return err
		}
		if m.sleep(ctx, backoff) != nil {
			return err
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// RetryFor bounds Do's retries when its context has no deadline.
const RetryFor = 2 * time.Minute

// StatusError is an answer of 300 or more other than 404.
type StatusError struct {
	Method, Path, Status string
	Code                 int
	Body                 string // the first 512 bytes
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %s: %s", e.Method, e.Path, e.Status, e.Body)
}

// transient reports whether a request that failed with err may succeed if
// sent again: it timed out or lost its connection, or the server answered
// 5xx. Anything else the transport reports (a refused connection, TLS
// spoken to a plain port) stays as it is however often it is sent.
func transient(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code >= 500
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		return false
	}
	return ue.Timeout() || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// once sends the request one time, with body unless it is nil.
func (m *Client) once(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, m.base+path, rd)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.SetBasicAuth(m.user, m.password)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := m.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		_, _ = io.Copy(io.Discard, resp.Body) // lets the connection be reused
		return ErrNotFound
	case resp.StatusCode >= 300:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return &StatusError{Method: method, Path: path, Status: resp.Status, Code: resp.StatusCode, Body: strings.TrimSpace(string(msg))}
	case out == nil:
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s response: %w", path, err)
	}
	return nil
}

// CreateVHost creates a virtual host; an existing one is left as it is.
func (m *Client) CreateVHost(ctx context.Context, name string) error {
	if err := m.Do(ctx, http.MethodPut, vhostPath(name), struct{}{}, nil); err != nil {
		return fmt.Errorf("create vhost %s: %w", name, err)
	}
	return nil
}

// DeleteVHost deletes a virtual host and everything in it.
func (m *Client) DeleteVHost(ctx context.Context, name string) error {
	if err := m.Do(ctx, http.MethodDelete, vhostPath(name), nil, nil); err != nil {
		return fmt.Errorf("delete vhost %s: %w", name, err)
	}
	return nil
}

// VHostExists reports whether a virtual host exists.
func (m *Client) VHostExists(ctx context.Context, name string) (bool, error) {
	err := m.Do(ctx, http.MethodGet, vhostPath(name), nil, nil)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up vhost %s: %w", name, err)
	}
	return true, nil
}

// Permissions are a user's configure, write and read patterns in a vhost.
type Permissions struct {
	Configure string `json:"configure"`
	Write     string `json:"write"`
	Read      string `json:"read"`
}

// GetPermissions returns user's permissions in vhost (ErrNotFound: none).
func (m *Client) GetPermissions(ctx context.Context, vhost, user string) (Permissions, error) {
	var p Permissions
	err := m.Do(ctx, http.MethodGet, permissionsPath(vhost, user), nil, &p)
	return p, err
}

// SetPermissions sets user's permissions in vhost.
func (m *Client) SetPermissions(ctx context.Context, vhost, user string, p Permissions) error {
	if err := m.Do(ctx, http.MethodPut, permissionsPath(vhost, user), p, nil); err != nil {
		return fmt.Errorf("set permissions of %s in vhost %s: %w", user, vhost, err)
	}
	return nil
}

// Node is one node of the cluster.
type Node struct {
	Name string `json:"name"`
	// OSPid is the node's operating-system process id (a string in the API).
	OSPid string `json:"os_pid"`
}

// Nodes lists the cluster's nodes.
func (m *Client) Nodes(ctx context.Context) ([]Node, error) {
	var nodes []Node
	if err := m.Do(ctx, http.MethodGet, "/api/nodes", nil, &nodes); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return nodes, nil
}

// LocalNodePID is the OS process id of the cluster's only node, when that
// node runs on this machine. A node that has just started reports no pid
// until its first statistics are collected (collect_statistics_interval), so
// it asks again every 200 ms for up to nodePIDWait.
func (m *Client) LocalNodePID(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, nodePIDWait)
	defer cancel()
	var pid int
	err := wait.Poll(ctx, 200*time.Millisecond, "the node's pid", func(ctx context.Context) (bool, error) {
		nodes, err := m.Nodes(ctx)
		if err != nil {
			return false, err
		}
		var known bool
		pid, known, err = onlyNodePID(nodes)
		return known, err
	})
	if err != nil {
		return 0, err
	}
	if !strings.HasPrefix(procfs.Comm(pid), "beam") {
		return 0, fmt.Errorf("the node's pid %d is not a process of this machine", pid)
	}
	return pid, nil
}

// nodePIDWait bounds how long LocalNodePID waits for a new node's first
// statistics; the platform collects them every second.
const nodePIDWait = 15 * time.Second

// onlyNodePID is the pid the cluster's only node reports; known is false
// while it reports none yet.
func onlyNodePID(nodes []Node) (pid int, known bool, err error) {
	if len(nodes) != 1 {
		return 0, false, fmt.Errorf("%d nodes in the cluster, want 1", len(nodes))
	}
	if nodes[0].OSPid == "" {
		return 0, false, nil
	}
	pid, err = strconv.Atoi(nodes[0].OSPid)
	if err != nil {
		return 0, false, fmt.Errorf("os pid %q: %w", nodes[0].OSPid, err)
	}
	return pid, true, nil
}

func vhostPath(name string) string { return "/api/vhosts/" + url.PathEscape(name) }

func permissionsPath(vhost, user string) string {
	return "/api/permissions/" + url.PathEscape(vhost) + "/" + url.PathEscape(user)
}
