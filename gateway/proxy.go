package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shopmesh/shopmesh/internal/httpkit"
)

// upstream forwards requests to one service.
type upstream struct {
	service Service
	base    *url.URL
	proxy   *httputil.ReverseProxy
	client  *http.Client // for /readyz probes
	logger  *slog.Logger
}

// newTransport is shared by every upstream: services are on a trusted
// network, so no environment proxy; connections are reused generously
// because every public request becomes one upstream request.
func newTransport(cfg Config) *http.Transport {
	return &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   cfg.DialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:           512,
		MaxIdleConnsPerHost:    64,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    cfg.DialTimeout,
		ResponseHeaderTimeout:  cfg.RequestTimeout,
		ExpectContinueTimeout:  0,
		MaxResponseHeaderBytes: 64 << 10,
		DisableCompression:     true, // pass bodies through as the service encoded them
	}
}

func newUpstream(s Service, base *url.URL, transport *http.Transport, logger *slog.Logger) *upstream {
	u := &upstream{
		service: s,
		base:    base,
		// Only used for probes; a redirect from a service is an answer,
		// never followed.
		client: &http.Client{
			Transport:     transport,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		logger: logger,
	}
	// The transport never follows redirects: a 3xx from a service reaches
	// the client as is.
	u.proxy = &httputil.ReverseProxy{
		Rewrite:        u.rewrite,
		Transport:      transport,
		FlushInterval:  -1, // responses are small JSON; never hold them back
		ModifyResponse: u.modifyResponse,
		ErrorHandler:   u.errorHandler,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BufferPool:     copyBuffers,
	}
	return u
}

// copyBuffers lends every proxy the buffer it copies a body through.
// Without a pool the proxy allocates 32 kB for each request, which was the
// largest share of the memory the whole system allocated under load.
var copyBuffers httputil.BufferPool = &bufferPool{}

type bufferPool struct{ pool sync.Pool }

func (p *bufferPool) Get() []byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, 32<<10)
}

func (p *bufferPool) Put(b []byte) { p.pool.Put(&b) }

// rewrite keeps the path and query, replaces every identity header with
// the verified caller's and forwards the request id. The proxy has already
// dropped hop-by-hop and X-Forwarded-* headers from the client. The token
// itself stays at the gateway: services trust the identity headers only.
func (u *upstream) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(u.base)
	pr.SetXForwarded()
	pr.Out.Header.Del("Forwarded")
	pr.Out.Header.Del("Authorization")
	pr.Out.Header.Del("Expect") // the body is already read
	for k := range pr.Out.Header {
		if strings.HasPrefix(http.CanonicalHeaderKey(k), identityPrefix) {
			delete(pr.Out.Header, k)
		}
	}
	st := stateFrom(pr.In.Context())
	if st == nil {
		return
	}
	pr.Out.Header.Set(httpkit.HeaderRequestID, st.requestID)
	if st.userID != "" {
		pr.Out.Header.Set(httpkit.HeaderUserID, st.userID)
		pr.Out.Header.Set(httpkit.HeaderUserRole, st.role)
	}
}

// maxErrorBody bounds how much of a non-problem error body is read before
// it is replaced.
const maxErrorBody = 64 << 10

// modifyResponse keeps the gateway's request id and makes every error a
// problem: a service's own problem+json passes through; anything else
// (a plain-text 404 from a mux, an HTML 502 from a proxy) is replaced by a
// problem with the same status, so clients see one error format.
func (u *upstream) modifyResponse(resp *http.Response) error {
	// The gateway already set these on the response.
	resp.Header.Del(httpkit.HeaderRequestID)
	resp.Header.Del("X-Content-Type-Options")
	for k := range resp.Header {
		if strings.HasPrefix(http.CanonicalHeaderKey(k), identityPrefix) {
			delete(resp.Header, k)
		}
	}
	if resp.StatusCode < 400 || isProblem(resp.Header.Get("Content-Type")) {
		return nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
	p := httpkit.NewProblem(resp.StatusCode, statusCode(resp.StatusCode), "")
	if resp.Request != nil {
		p.Instance = resp.Request.URL.Path
	}
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	body = append(body, '\n')
	if resp.Request != nil && resp.Request.Method == http.MethodHead {
		body = nil
	}
	resp.Header.Del("Content-Encoding")
	resp.Header.Set("Content-Type", "application/problem+json")
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.ContentLength = int64(len(body))
	resp.TransferEncoding = nil
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return nil
}

func isProblem(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/problem+json"
}

// statusCode names a status for a problem type: 404 -> "not-found".
func statusCode(status int) string {
	text := http.StatusText(status)
	if text == "" {
		return "error"
	}
	return strings.ToLower(strings.NewReplacer(" ", "-", "'", "").Replace(text))
}

// errorHandler answers a request the service did not: 504 when the request
// timeout passed, nothing when the client went away, 502 otherwise (service
// down, connection refused or reset).
func (u *upstream) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	st := stateFrom(r.Context())
	reqID := ""
	if st != nil {
		reqID = st.requestID
	}
	var opErr *net.OpError
	switch {
	case errors.Is(r.Context().Err(), context.Canceled):
		// The client is gone; nobody reads an answer. 499 only for the log.
		w.WriteHeader(499)
	case errors.As(err, &opErr) && opErr.Op == "dial" && !errors.Is(err, context.DeadlineExceeded):
		u.logger.Warn("upstream unreachable", "upstream", u.service, "request_id", reqID, "err", err)
		httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusBadGateway, "bad-gateway",
			"the service is unavailable; retry later"))
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		u.logger.Warn("upstream timed out", "upstream", u.service, "request_id", reqID, "err", err)
		httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusGatewayTimeout, "gateway-timeout",
			"the service did not answer in time"))
	default:
		u.logger.Warn("upstream unreachable", "upstream", u.service, "request_id", reqID, "err", err)
		httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusBadGateway, "bad-gateway",
			"the service is unavailable; retry later"))
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
