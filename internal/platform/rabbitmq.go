package platform

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopmesh/shopmesh/internal/rabbitmgmt"
)

func provisionRabbitMQ(ctx context.Context, a Admin, services []Service) error {
	uri, err := amqp.ParseURI(a.AMQPURL)
	if err != nil {
		return fmt.Errorf("parse admin AMQP URL: %w", err)
	}
	m, err := rabbitmgmt.New(a.ManagementURL)
	if err != nil {
		return err
	}
	exists, err := m.VHostExists(ctx, uri.Vhost)
	if err != nil {
		return err
	}
	if !exists {
		if err := m.CreateVHost(ctx, uri.Vhost); err != nil {
			return err
		}
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
func ensureUser(ctx context.Context, m *rabbitmgmt.Client, name, password string) error {
	path := "/api/users/" + url.PathEscape(name)
	var u struct {
		PasswordHash string          `json:"password_hash"`
		Algorithm    string          `json:"hashing_algorithm"`
		Tags         json.RawMessage `json:"tags"`
	}
	err := m.Do(ctx, http.MethodGet, path, nil, &u)
	if err != nil && !errors.Is(err, rabbitmgmt.ErrNotFound) {
		return fmt.Errorf("look up user %s: %w", name, err)
	}
	if err == nil && !hasTags(u.Tags) && rabbitHashMatches(u.PasswordHash, u.Algorithm, password) {
		return nil
	}
	body := map[string]string{"password": password, "tags": ""}
	if err := m.Do(ctx, http.MethodPut, path, body, nil); err != nil {
		return fmt.Errorf("put user %s: %w", name, err)
	}
	return nil
}

func ensurePermissions(ctx context.Context, m *rabbitmgmt.Client, vhost, user string, s Service) error {
	var want rabbitmgmt.Permissions
	want.Configure, want.Write, want.Read = Permissions(s)
	got, err := m.GetPermissions(ctx, vhost, user)
	if err != nil && !errors.Is(err, rabbitmgmt.ErrNotFound) {
		return fmt.Errorf("look up permissions of %s: %w", user, err)
	}
	if err == nil && got == want {
		return nil
	}
	return m.SetPermissions(ctx, vhost, user, want)
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
