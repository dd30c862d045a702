package platform

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func provisionRabbitMQ(ctx context.Context, a Admin, services []Service) error {
	uri, err := amqp.ParseURI(a.AMQPURL)
	if err != nil {
		return fmt.Errorf("parse admin AMQP URL: %w", err)
	}
	m, err := newManagement(a.ManagementURL)
	if err != nil {
		return err
	}
	vhost := url.PathEscape(uri.Vhost)
	if err := m.do(ctx, http.MethodGet, "/api/vhosts/"+vhost, nil, nil); errors.Is(err, errNotFound) {
		if err := m.do(ctx, http.MethodPut, "/api/vhosts/"+vhost, struct{}{}, nil); err != nil {
			return fmt.Errorf("create vhost %s: %w", uri.Vhost, err)
		}
	} else if err != nil {
		return fmt.Errorf("look up vhost %s: %w", uri.Vhost, err)
	}
	for _, s := range services {
		if err := ensureUser(ctx, m, RoleName(s.Name), a.password("amqp", s.Name)); err != nil {
			return fmt.Errorf("service %s: %w", s.Name, err)
		}
		if err := ensurePermissions(ctx, m, uri.Vhost, RoleName(s.Name), s); err != nil {
			return fmt.Errorf("service %s: %w", s.Name, err)
		}
	}
	return nil
}

// ensureUser creates name without tags and with password, or brings an
// existing user back to that.
func ensureUser(ctx context.Context, m *management, name, password string) error {
	path := "/api/users/" + url.PathEscape(name)
	var u struct {
		PasswordHash string          `json:"password_hash"`
		Algorithm    string          `json:"hashing_algorithm"`
		Tags         json.RawMessage `json:"tags"`
	}
	err := m.do(ctx, http.MethodGet, path, nil, &u)
	if err != nil && !errors.Is(err, errNotFound) {
		return fmt.Errorf("look up user %s: %w", name, err)
	}
	if err == nil && !hasTags(u.Tags) && rabbitHashMatches(u.PasswordHash, u.Algorithm, password) {
		return nil
	}
	body := map[string]string{"password": password, "tags": ""}
	if err := m.do(ctx, http.MethodPut, path, body, nil); err != nil {
		return fmt.Errorf("put user %s: %w", name, err)
	}
	return nil
}

type permissions struct {
	Configure string `json:"configure"`
	Write     string `json:"write"`
	Read      string `json:"read"`
}

func ensurePermissions(ctx context.Context, m *management, vhost, user string, s Service) error {
	var want permissions
	want.Configure, want.Write, want.Read = Permissions(s)
	path := "/api/permissions/" + url.PathEscape(vhost) + "/" + url.PathEscape(user)
	var got permissions
	err := m.do(ctx, http.MethodGet, path, nil, &got)
	if err != nil && !errors.Is(err, errNotFound) {
		return fmt.Errorf("look up permissions of %s: %w", user, err)
	}
	if err == nil && got == want {
		return nil
	}
	if err := m.do(ctx, http.MethodPut, path, want, nil); err != nil {
		return fmt.Errorf("set permissions of %s: %w", user, err)
	}
	return nil
}

// hasTags reports whether a user's tags, a list (RabbitMQ ≥ 3.9) or a
// comma-separated string (older), are not empty.
func hasTags(raw json.RawMessage) bool {
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return len(list) > 0
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s) != ""
	}
	return len(raw) > 0
}

// rabbitHashMatches reports whether a RabbitMQ internal password hash
// (base64 of a 4-byte salt followed by hash(salt ++ password)) was made from
// password. Unknown algorithms do not match, so the password gets reset.
func rabbitHashMatches(encoded, algorithm, password string) bool {
	var h hash.Hash
	switch algorithm {
	case "rabbit_password_hashing_sha256":
		h = sha256.New()
	case "rabbit_password_hashing_sha512":
		h = sha512.New()
	default:
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil || len(raw) != 4+h.Size() {
		return false
	}
	h.Write(raw[:4])
	h.Write([]byte(password))
	return subtle.ConstantTimeCompare(h.Sum(nil), raw[4:]) == 1
}

// errNotFound is what management returns for HTTP 404.
var errNotFound = errors.New("not found")

// management is the part of the RabbitMQ management HTTP API provisioning uses.
type management struct {
	base     string // scheme://host:port
	user     string
	password string
	http     *http.Client
}

func newManagement(raw string) (*management, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse management URL: %w", err)
	}
	if u.User == nil {
		return nil, fmt.Errorf("management URL %s has no credentials", u.Redacted())
	}
	pw, _ := u.User.Password()
	return &management{
		base:     u.Scheme + "://" + u.Host + strings.TrimRight(u.Path, "/"),
		user:     u.User.Username(),
		password: pw,
		http:     &http.Client{Timeout: 30 * time.Second},
	}, nil
}

// do sends a request with in as JSON body (unless nil) and decodes the JSON
// response into out (unless nil). path must be escaped already.
func (m *management) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, m.base+path, body)
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
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return errNotFound
	case resp.StatusCode >= 300:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(msg)))
	case out == nil:
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s response: %w", path, err)
	}
	return nil
}
