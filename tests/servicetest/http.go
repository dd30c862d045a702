package servicetest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/shopmesh/shopmesh/internal/httpkit"
)

// Caller is who a request comes from, as the gateway's identity headers
// say; the zero Caller is anonymous.
type Caller struct{ UserID, Role string }

// AsCustomer is userID calling as a customer; anonymous when userID is "".
func AsCustomer(userID string) Caller { return Caller{UserID: userID, Role: "customer"} }

// Response is the service's answer to a request.
type Response struct {
	Status      int
	ContentType string
	Header      http.Header
	Body        []byte
}

// Problem decodes an application/problem+json answer, reporting to t when
// the answer is not one.
func (r Response) Problem(t testing.TB) httpkit.Problem {
	t.Helper()
	var p httpkit.Problem
	if r.ContentType != "application/problem+json" {
		t.Errorf("content type %q, want application/problem+json (body %s)", r.ContentType, r.Body)
	}
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Errorf("problem body %s: %v", r.Body, err)
	}
	return p
}

// Do calls the service as the gateway forwards a request: the public path,
// the caller's identity in headers, a JSON body (none when nil) and any
// further headers as name, value pairs.
func (s *Service) Do(method, path string, who Caller, body []byte, headers ...string) Response {
	s.t.Helper()
	req, err := http.NewRequestWithContext(s.ctx, method, s.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if who.UserID != "" {
		req.Header.Set(httpkit.HeaderUserID, who.UserID)
		req.Header.Set(httpkit.HeaderUserRole, who.Role)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return Response{Status: res.StatusCode, ContentType: res.Header.Get("Content-Type"), Header: res.Header, Body: b}
}

// Fetch calls the service without a body and decodes a 200 answer into v
// (unless nil); it returns the status and content type.
func (s *Service) Fetch(method, path string, who Caller, v any) (int, string) {
	s.t.Helper()
	res := s.Do(method, path, who, nil)
	if v != nil && res.Status == http.StatusOK {
		if err := json.Unmarshal(res.Body, v); err != nil {
			s.t.Fatalf("%s %s: decode %s: %v", method, path, res.Body, err)
		}
	}
	return res.Status, res.ContentType
}

// GetJSON fetches path and decodes the answer into v; anything but 200
// fails the test.
func (s *Service) GetJSON(path string, who Caller, v any) {
	s.t.Helper()
	res := s.Do(http.MethodGet, path, who, nil)
	if res.Status != http.StatusOK {
		s.t.Fatalf("GET %s: %d %s", path, res.Status, res.Body)
	}
	if err := json.Unmarshal(res.Body, v); err != nil {
		s.t.Fatalf("GET %s: decode %s: %v", path, res.Body, err)
	}
}

// ExpectProblem asserts that a request without a body is answered with
// status want as application/problem+json.
func (s *Service) ExpectProblem(method, path string, who Caller, want int) {
	s.t.Helper()
	status, ct := s.Fetch(method, path, who, nil)
	if status != want || ct != "application/problem+json" {
		s.t.Errorf("%s %s as %q: %d %s, want %d application/problem+json", method, path, who.UserID, status, ct, want)
	}
}

// Callers the catalogue, cart and inventory tests share: nobody, an
// administrator and a customer, with fixed user ids.
var (
	Anonymous = Caller{}
	Admin     = Caller{UserID: "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f01", Role: "admin"}
	Customer  = Caller{UserID: "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f50", Role: "customer"}
)
