package transport

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-kit/kit/endpoint"
	kithttp "github.com/go-kit/kit/transport/http"

	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/services/analytics/internal/domain"
)

// Service is what the HTTP API needs from the use cases.
type Service interface {
	SalesReport(ctx context.Context, from, to *time.Time) (domain.SalesReport, error)
	FunnelReport(ctx context.Context, from, to *time.Time) (domain.Funnel, error)
}

// Endpoints are the analytics service's go-kit endpoints.
type Endpoints struct {
	Sales  endpoint.Endpoint
	Funnel endpoint.Endpoint
}

// MakeEndpoints builds the endpoints over svc.
func MakeEndpoints(svc Service) Endpoints {
	return Endpoints{
		Sales: func(ctx context.Context, request any) (any, error) {
			req := request.(periodRequest)
			r, err := svc.SalesReport(ctx, req.From, req.To)
			if err != nil {
				return salesResponse{Err: err}, nil
			}
			return toSalesResponse(r), nil
		},
		Funnel: func(ctx context.Context, request any) (any, error) {
			req := request.(periodRequest)
			f, err := svc.FunnelReport(ctx, req.From, req.To)
			if err != nil {
				return funnelResponse{Err: err}, nil
			}
			return funnelResponse{From: date(f.Period.From), To: date(f.Period.To), CartsTouched: f.CartsTouched,
				Checkouts: f.Checkouts, Placed: f.Placed, Confirmed: f.Confirmed, Delivered: f.Delivered}, nil
		},
	}
}

// periodRequest is the period of a report; nil ends take the defaults.
type periodRequest struct {
	From, To *time.Time
}

type moneyView struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

type salesView struct {
	Date            string    `json:"date,omitempty"`
	Currency        string    `json:"currency"`
	OrdersConfirmed int64     `json:"orders_confirmed"`
	Revenue         moneyView `json:"revenue"`
	Refunds         int64     `json:"refunds"`
	Refunded        moneyView `json:"refunded"`
	Net             moneyView `json:"net"`
}

type outcomesView struct {
	Completed         int64            `json:"completed"`
	Cancelled         int64            `json:"cancelled"`
	CancelledByReason map[string]int64 `json:"cancelled_by_reason"`
}

type productView struct {
	ProductID string    `json:"product_id"`
	SKU       string    `json:"sku"`
	Name      string    `json:"name"`
	Units     int64     `json:"units"`
	Revenue   moneyView `json:"revenue"`
}

type stockView struct {
	ProductID           string `json:"product_id"`
	SKU                 string `json:"sku"`
	Reserved            int64  `json:"reserved"`
	Released            int64  `json:"released"`
	Committed           int64  `json:"committed"`
	Returned            int64  `json:"returned"`
	Adjusted            int64  `json:"adjusted"`
	ReservationFailures int64  `json:"reservation_failures"`
	LowStockAlerts      int64  `json:"low_stock_alerts"`
}

// salesResponse is the sales report.
type salesResponse struct {
	From        string        `json:"from"`
	To          string        `json:"to"`
	Totals      []salesView   `json:"totals"`
	Days        []salesView   `json:"days"`
	Outcomes    outcomesView  `json:"outcomes"`
	TopProducts []productView `json:"top_products"`
	Stock       []stockView   `json:"stock"`
	Err         error         `json:"-"`
}

// Failed returns the business error of the request, if any.
func (r salesResponse) Failed() error { return r.Err }

// funnelResponse is the funnel report.
type funnelResponse struct {
	From         string `json:"from"`
	To           string `json:"to"`
	CartsTouched int64  `json:"carts_touched"`
	Checkouts    int64  `json:"checkouts"`
	Placed       int64  `json:"placed"`
	Confirmed    int64  `json:"confirmed"`
	Delivered    int64  `json:"delivered"`
	Err          error  `json:"-"`
}

// Failed returns the business error of the request, if any.
func (r funnelResponse) Failed() error { return r.Err }

func toSalesResponse(r domain.SalesReport) salesResponse {
	resp := salesResponse{
		From: date(r.Period.From), To: date(r.Period.To),
		Totals: make([]salesView, 0, len(r.Totals)), Days: make([]salesView, 0, len(r.Days)),
		Outcomes: outcomesView{Completed: r.Outcomes.Completed, Cancelled: r.Outcomes.Cancelled,
			CancelledByReason: r.Outcomes.ByReason},
		TopProducts: make([]productView, 0, len(r.Top)), Stock: make([]stockView, 0, len(r.Stock)),
	}
	for _, s := range r.Totals {
		resp.Totals = append(resp.Totals, toSalesView(s))
	}
	for _, s := range r.Days {
		resp.Days = append(resp.Days, toSalesView(s))
	}
	for _, p := range r.Top {
		resp.TopProducts = append(resp.TopProducts, productView{ProductID: p.ProductID, SKU: p.SKU, Name: p.Name, Units: p.Units,
			Revenue: moneyView{p.RevenueMinor, p.Currency}})
	}
	for _, s := range r.Stock {
		n := s.Counts
		resp.Stock = append(resp.Stock, stockView{ProductID: s.ProductID, SKU: s.SKU,
			Reserved: n[domain.StockReserved], Released: n[domain.StockReleased], Committed: n[domain.StockCommitted],
			Returned: n[domain.StockReturned], Adjusted: n[domain.StockAdjusted],
			ReservationFailures: n[domain.StockReservationFailed], LowStockAlerts: n[domain.StockLowAlert]})
	}
	return resp
}

func toSalesView(s domain.Sales) salesView {
	v := salesView{Currency: s.Currency, OrdersConfirmed: s.OrdersConfirmed, Refunds: s.Refunds,
		Revenue: moneyView{s.RevenueMinor, s.Currency}, Refunded: moneyView{s.RefundedMinor, s.Currency},
		Net: moneyView{s.NetMinor(), s.Currency}}
	if !s.Day.IsZero() {
		v.Date = date(s.Day)
	}
	return v
}

func date(t time.Time) string { return t.Format(time.DateOnly) }

// NewHTTPHandler serves the administrators' reports as the gateway forwards
// them:
//
//	GET /api/v1/admin/reports/sales?from=YYYY-MM-DD&to=YYYY-MM-DD
//	GET /api/v1/admin/reports/funnel?from=YYYY-MM-DD&to=YYYY-MM-DD
//
// Both ends are optional (default: the 30 days up to today, UTC) and
// included; a period is at most 366 days.
func NewHTTPHandler(eps Endpoints, logger *slog.Logger) http.Handler {
	opts := httpkit.ServerOptions(toProblem, logger)
	ok := httpkit.EncodeJSON(http.StatusOK, toProblem, logger)
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/admin/reports/sales", httpkit.RequireAdmin(kithttp.NewServer(eps.Sales, decodePeriod, ok, opts...)))
	mux.Handle("GET /api/v1/admin/reports/funnel", httpkit.RequireAdmin(kithttp.NewServer(eps.Funnel, decodePeriod, ok, opts...)))
	mux.Handle("/api/v1/admin/reports/sales", methodNotAllowed("GET, HEAD"))
	mux.Handle("/api/v1/admin/reports/funnel", methodNotAllowed("GET, HEAD"))
	mux.HandleFunc("/", httpkit.NotFound)
	return mux
}

func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		httpkit.WriteProblem(w, r, httpkit.NewProblem(http.StatusMethodNotAllowed, "method-not-allowed", "allowed: "+allow))
	})
}

func decodePeriod(_ context.Context, r *http.Request) (any, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, httpkit.NewProblem(http.StatusBadRequest, "malformed-query", "the query string is malformed")
	}
	var (
		req    periodRequest
		fields []httpkit.FieldError
	)
	for name, values := range q {
		switch {
		case name != "from" && name != "to":
			fields = append(fields, httpkit.FieldError{Field: name, Message: "unknown query parameter"})
		case len(values) > 1:
			fields = append(fields, httpkit.FieldError{Field: name, Message: "must be given once"})
		default:
			d, err := time.Parse(time.DateOnly, values[0])
			if err != nil {
				fields = append(fields, httpkit.FieldError{Field: name, Message: "must be a date, YYYY-MM-DD"})
			}
			if name == "from" {
				req.From = &d
			} else {
				req.To = &d
			}
		}
	}
	if len(fields) > 0 {
		return nil, httpkit.Validation(fields...)
	}
	return req, nil
}

// toProblem is the service's one mapping of errors to HTTP problems. The
// only business error is a period that is reversed or too long, which the
// start of the period can always fix.
func toProblem(err error) *httpkit.Problem {
	if errors.Is(err, domain.ErrInvalid) {
		return httpkit.Validation(httpkit.FieldError{Field: "from",
			Message: strings.TrimPrefix(err.Error(), domain.ErrInvalid.Error()+": ")})
	}
	return nil
}
