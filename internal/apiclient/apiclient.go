// Package apiclient is a client of shopmesh's public HTTP API as the
// gateway serves it: raw requests, answers with an expected status, RFC 9457
// problems, and the calls every driver of the whole system makes (register,
// log in, products, stock, cart, checkout, orders). It sends each request
// once: retry policies belong to its callers (the chaos workload, the demo),
// which loop over Do. It must not know any service's internals.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxAnswer bounds how much of an answer is read: the API's answers are
// small, and a misdirected URL must not fill memory.
const maxAnswer = 4 << 20

// Client calls the gateway at Base as the user whose Token it sends (none:
// anonymously). It is safe for concurrent use as long as Token is not
// changed meanwhile.
type Client struct {
	Base  string
	HTTP  *http.Client
	Token string
}

// New returns an anonymous client of the gateway at base.
func New(base string, hc *http.Client) *Client {
	return &Client{Base: base, HTTP: hc}
}

// As returns a client of the same gateway that sends token.
func (c *Client) As(token string) *Client {
	return &Client{Base: c.Base, HTTP: c.HTTP, Token: token}
}

// Response is an answer of the API, whatever its status.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Decode decodes the JSON body into v.
func (r Response) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("decode %d answer %.200s: %w", r.Status, r.Body, err)
	}
	return nil
}

// Problem is an RFC 9457 problem answer.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// Problem decodes the body as a problem; ok is false when it is not one.
func (r Response) Problem() (p Problem, ok bool) {
	return p, json.Unmarshal(r.Body, &p) == nil && (p.Title != "" || p.Type != "" || p.Detail != "")
}

// Encode returns body as Do sends it: nil for none, a []byte as is, any
// other value as JSON. Callers that send one request several times encode
// it once.
func Encode(body any) ([]byte, error) {
	switch b := body.(type) {
	case nil:
		return nil, nil
	case []byte:
		return b, nil
	default:
		return json.Marshal(b)
	}
}

// Do sends one request and returns the answer, whatever its status. body
// is nil, a []byte sent as is, or a value sent as JSON; headers are
// name/value pairs.
func (c *Client) Do(ctx context.Context, method, path string, body any, headers ...string) (Response, error) {
	raw, err := Encode(body)
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: encode body: %w", method, path, err)
	}
	var rd io.Reader
	if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// StatusError is an answer with another status than the one expected. It
// keeps the problem's title and detail when the gateway sent one.
type StatusError struct {
	Method, Path string
	Status, Want int
	Title        string
	Detail       string
	Body         string
}

func (e *StatusError) Error() string {
	msg := e.Detail
	if msg == "" {
		msg = e.Title
	}
	if msg == "" {
		msg = fmt.Sprintf("%.300s", e.Body)
	}
	return fmt.Sprintf("%s %s = %d %s, want %d", e.Method, e.Path, e.Status, msg, e.Want)
}

// HasStatus reports whether err is an answer with the given status.
func HasStatus(err error, status int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == status
}

// Check returns nil when r has status want and a *StatusError otherwise;
// with out not nil, it decodes the answer into out.
func Check(method, path string, r Response, want int, out any) error {
	if r.Status != want {
		se := &StatusError{Method: method, Path: path, Status: r.Status, Want: want, Body: strings.TrimSpace(string(r.Body))}
		if p, ok := r.Problem(); ok {
			se.Title, se.Detail = p.Title, p.Detail
		}
		return se
	}
	if out != nil {
		if err := r.Decode(out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// Expect sends a request and decodes the answer into out (when not nil);
// any other status than want is a *StatusError.
func (c *Client) Expect(ctx context.Context, want int, out any, method, path string, body any, headers ...string) error {
	r, err := c.Do(ctx, method, path, body, headers...)
	if err != nil {
		return err
	}
	return Check(method, path, r, want, out)
}
