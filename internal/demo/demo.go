// Package demo plays shopmesh's customer journey against a running system,
// through the public gateway and nothing else: it seeds a small catalogue
// with the admin API, registers a few customers and has them take orders
// down every path of the order saga at once (delivered, payment declined,
// payment timeout, out of stock, undeliverable, customer cancel). It prints
// each order's timeline as the order settles, then a table of the orders, a
// summary, the stock levels and every order's payment, shipment and invoice,
// and reports whether each order ended as its path demands.
//
// It is the operator's `shopmesh demo`: it speaks HTTP/JSON to the gateway
// only, never reads a service's database nor imports a service package, and
// every wait it makes is a poll bounded by a deadline. Its products carry a
// SKU unique to the run, so it can run again and again on the same system.
package demo

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of Config.
const (
	DefaultGateway      = "http://127.0.0.1:8080"
	DefaultCustomers    = 3
	DefaultWait         = 2 * time.Minute
	DefaultPollInterval = 200 * time.Millisecond
	// DefaultAdminEmail is the administrator the demo makes for itself
	// when it is given none; each run sets a fresh random password.
	DefaultAdminEmail = "demo-admin@example.com"
	// MaxCustomers bounds Customers: the demo is a showcase, not a load test.
	MaxCustomers = 60
)

// Config configures a demo run.
type Config struct {
	// Gateway is the base URL of the public gateway. Default DefaultGateway.
	Gateway string
	// AdminEmail and AdminPassword log in an existing administrator. Give
	// both or neither; with neither, CreateAdmin is required.
	AdminEmail, AdminPassword string
	// CreateAdmin makes sure an active administrator with this email and
	// password exists (what `shopmesh user create-admin` does). The demo
	// calls it with DefaultAdminEmail and a fresh random password when
	// AdminEmail is empty.
	CreateAdmin func(ctx context.Context, email, password string) error
	// Customers is how many customers play. The paths are dealt out to
	// them in turn, so every path is played once whatever the number; with
	// more customers than paths, the extra customers play the paths again
	// from the first. Default DefaultCustomers, at most MaxCustomers.
	Customers int
	// Seed drives the random choices: the customers' names, what each
	// order holds. Zero takes a seed from the clock; Summary.Seed reports
	// the one used, so a run can be repeated.
	Seed int64
	// Wait bounds every wait: the system becoming ready, the catalogue
	// reaching inventory and the carts, each order settling (counted from
	// its checkout, and including the payment timeout of the timeout
	// path), and the stock and views settling. Default DefaultWait.
	Wait time.Duration
	// PaymentTimeout is the order service's payment timeout as far as the
	// caller knows it (SHOPMESH_ORDER_PAYMENT_TIMEOUT); zero means unknown.
	// It only informs what the demo prints, and a warning when it is not
	// shorter than Wait.
	PaymentTimeout time.Duration
	// PollInterval is how often a pending order, stock level or view is
	// read again. Default DefaultPollInterval.
	PollInterval time.Duration
	// HTTPClient sends the requests. Default: a client whose requests each
	// time out after 15s.
	HTTPClient *http.Client
}

// withDefaults returns c with its zero fields set to the defaults.
func (c Config) withDefaults() Config {
	if c.Gateway == "" {
		c.Gateway = DefaultGateway
	}
	c.Gateway = strings.TrimRight(c.Gateway, "/")
	if c.Customers == 0 {
		c.Customers = DefaultCustomers
	}
	if c.Wait == 0 {
		c.Wait = DefaultWait
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	return c
}

// Validate reports every invalid field of c after defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if u, err := url.Parse(c.Gateway); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("gateway %q: want an http(s) URL such as %s", c.Gateway, DefaultGateway))
	}
	switch {
	case (c.AdminEmail == "") != (c.AdminPassword == ""):
		errs = append(errs, errors.New("give both the admin email and password, or neither"))
	case c.AdminEmail == "" && c.CreateAdmin == nil:
		errs = append(errs, errors.New("no administrator: give the email and password of one, or a way to create one"))
	}
	if c.Customers < 1 || c.Customers > MaxCustomers {
		errs = append(errs, fmt.Errorf("customers %d: want 1 to %d", c.Customers, MaxCustomers))
	}
	if c.Wait < 0 {
		errs = append(errs, fmt.Errorf("wait %s: must be positive", c.Wait))
	}
	if c.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("poll interval %s: must be positive", c.PollInterval))
	}
	if c.PaymentTimeout < 0 {
		errs = append(errs, fmt.Errorf("payment timeout %s: must not be negative", c.PaymentTimeout))
	}
	return errors.Join(errs...)
}

// Summary is what a run did and saw.
type Summary struct {
	// Seed is the seed the run used.
	Seed int64
	// Orders are the orders, in the order they were dealt out.
	Orders []OrderResult
	// Stock are the seeded products' final stock levels.
	Stock []StockResult
}

// Failed returns the orders that did not end as their path demands.
func (s Summary) Failed() []OrderResult {
	var out []OrderResult
	for _, o := range s.Orders {
		if !o.OK() {
			out = append(out, o)
		}
	}
	return out
}

// OK reports whether every order ended as its path demands and every
// product's stock came back to what the delivered orders left.
func (s Summary) OK() bool {
	if len(s.Orders) == 0 || len(s.Failed()) > 0 {
		return false
	}
	for _, st := range s.Stock {
		if st.Problem != "" {
			return false
		}
	}
	return true
}

// err explains what was wrong with the run, or is nil.
func (s Summary) err() error {
	var errs []error
	if n := len(s.Failed()); n > 0 {
		errs = append(errs, fmt.Errorf("%d of %d orders did not reach their expected state", n, len(s.Orders)))
	}
	for _, st := range s.Stock {
		if st.Problem != "" {
			errs = append(errs, fmt.Errorf("stock of %s: %s", st.SKU, st.Problem))
		}
	}
	return errors.Join(errs...)
}

// OrderResult is one order's journey.
type OrderResult struct {
	Customer string
	Path     Path
	OrderID  string
	// WantStatus and WantReason are the terminal state the path demands.
	WantStatus, WantReason string
	// Status and Reason are the last state seen.
	Status, Reason string
	Timeline       []TimelineEntry
	// Settled is how long the order took from checkout to settled (zero
	// when it did not settle).
	Settled time.Duration
	// Payment, Shipment and Invoice describe the order's views in the
	// payment, shipping and invoice services ("" when there is none).
	Payment, Shipment, Invoice string
	// Problems say how the order departed from its path; empty when it
	// ended as expected.
	Problems []string
}

// OK reports whether the order ended as its path demands.
func (r OrderResult) OK() bool { return len(r.Problems) == 0 }

// TimelineEntry is one step of an order's timeline.
type TimelineEntry struct {
	Type string    `json:"type"`
	At   time.Time `json:"at"`
}

// StockResult is a seeded product's stock at the end of a run.
type StockResult struct {
	SKU, Name                   string
	Initial                     int
	OnHand, Reserved, Available int
	// WantOnHand is the initial stock less what delivered orders took.
	WantOnHand int
	// Problem says how the levels differ from what they should be.
	Problem string
}

// Run plays the demo against the system behind cfg.Gateway and writes the
// report to out. It returns an error when the system cannot be set up for
// the demo, or when an order does not reach its path's terminal state (or
// the stock its compensations restore) within cfg.Wait; the Summary holds
// whatever was seen either way.
func Run(ctx context.Context, cfg Config, out io.Writer) (Summary, error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, fmt.Errorf("demo config: %w", err)
	}
	cfg = cfg.withDefaults()
	seed := cfg.Seed
	if seed == 0 {
		seed = 1 + time.Now().UnixNano()%999_999 // short enough to type again
	}
	d := &demo{
		cfg: cfg,
		rng: rand.New(rand.NewPCG(uint64(seed), uint64(seed))),
		run: strings.ToUpper(strconv.FormatInt(time.Now().UnixMilli()%(36*36*36*36*36*36), 36)),
		out: &report{w: out},
		api: newClient(cfg.HTTPClient, cfg.Gateway),
	}
	sum := Summary{Seed: seed}
	plays := max(cfg.Customers, len(pathSpecs()))
	d.out.printf("shopmesh demo · gateway %s · seed %d · %d customers, %d orders · waits up to %s\n",
		cfg.Gateway, seed, cfg.Customers, plays, cfg.Wait)

	if err := d.waitReady(ctx); err != nil {
		return sum, err
	}
	admin, err := d.admin(ctx)
	if err != nil {
		return sum, err
	}
	products, err := d.seedCatalogue(ctx, admin, plays)
	if err != nil {
		return sum, err
	}
	plan := d.plan(products, plays)
	if cfg.PaymentTimeout >= cfg.Wait {
		d.out.printf("warning: the payment timeout (%s) is not shorter than the wait (%s): the %s order cannot settle in time\n",
			cfg.PaymentTimeout, cfg.Wait, PathPaymentTimeout)
	}

	sum.Orders = d.playAll(ctx, plan)
	d.printOrders(sum.Orders)
	sum.Stock = d.checkStock(ctx, admin, products, sum.Orders, plan)
	d.printSummary(sum)
	d.printStock(sum.Stock)
	d.printViews(sum.Orders)
	if err := ctx.Err(); err != nil {
		return sum, err
	}
	if err := d.out.err; err != nil {
		return sum, fmt.Errorf("write report: %w", err)
	}
	return sum, sum.err()
}

// demo is one run.
type demo struct {
	cfg Config
	rng *rand.Rand // used before the customers start, never concurrently
	run string     // makes SKUs and e-mail addresses unique to the run
	out *report
	api *client
}

// report serializes what concurrent players print, and keeps the first
// write error.
type report struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

func (r *report) printf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return
	}
	_, r.err = fmt.Fprintf(r.w, format, args...)
}

// write runs fn with the report's writer under its lock, for a block that
// must not interleave with other output.
func (r *report) write(fn func(w io.Writer) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return
	}
	r.err = fn(r.w)
}

// deadline is the end of a wait that starts now.
func (d *demo) deadline() time.Time { return time.Now().Add(d.cfg.Wait) }

// waitReady polls the gateway's readiness, so that a system still starting
// is waited for and a system that is not there is reported plainly.
func (d *demo) waitReady(ctx context.Context) error {
	err := poll(ctx, d.deadline(), d.cfg.PollInterval, "gateway ready", func(ctx context.Context) error {
		r, err := d.api.api.Do(ctx, http.MethodGet, "/readyz", nil)
		if err != nil {
			return err
		}
		if r.Status != http.StatusOK && r.Status != http.StatusNoContent {
			return fmt.Errorf("GET /readyz: %d", r.Status)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w (is the system running? `make up` starts it)", err)
	}
	return nil
}

// admin logs in the configured administrator, or makes the demo's own.
func (d *demo) admin(ctx context.Context) (*client, error) {
	email, password := d.cfg.AdminEmail, d.cfg.AdminPassword
	how := "given"
	if email == "" {
		email, password, how = DefaultAdminEmail, "demo-"+crand.Text(), "created or refreshed with `shopmesh user create-admin`"
		if err := d.cfg.CreateAdmin(ctx, email, password); err != nil {
			return nil, fmt.Errorf("create the demo administrator (or pass the email and password of an existing one): %w", err)
		}
	}
	tok, err := d.login(ctx, email, password)
	if err != nil {
		return nil, fmt.Errorf("log in administrator %s: %w", email, err)
	}
	d.out.printf("administrator %s (%s)\n", email, how)
	return d.api.as(tok), nil
}

// login returns a bearer token for the account.
func (d *demo) login(ctx context.Context, email, password string) (string, error) {
	var tok struct {
		Token string `json:"token"`
	}
	if err := d.api.call(ctx, http.StatusOK, &tok, http.MethodPost, "/api/v1/auth/login",
		map[string]string{"email": email, "password": password}); err != nil {
		return "", err
	}
	if tok.Token == "" {
		return "", errors.New("login answered without a token")
	}
	return tok.Token, nil
}

// playAll runs every customer at once: each registers, then checks out its
// orders one after the other (a customer has one cart) and leaves each to
// settle on its own while placing the next. It returns the results in plan
// order once every order settled or ran out of time.
func (d *demo) playAll(ctx context.Context, plan []*customerPlan) []OrderResult {
	var n int
	for _, c := range plan {
		n += len(c.orders)
	}
	results := make([]OrderResult, n)
	d.out.printf("\nplaying %d orders; each is printed as it settles:\n", n)
	var wg sync.WaitGroup
	for _, c := range plan {
		wg.Go(func() { d.playCustomer(ctx, c, results, &wg) })
	}
	wg.Wait()
	return results
}

// printOrders prints the table of every order.
func (d *demo) printOrders(orders []OrderResult) {
	d.out.write(func(w io.Writer) error { return writeOrders(w, orders) })
}

func (d *demo) printSummary(s Summary) {
	d.out.write(func(w io.Writer) error { return writeSummary(w, s) })
}

func (d *demo) printStock(stock []StockResult) {
	d.out.write(func(w io.Writer) error { return writeStock(w, stock) })
}

func (d *demo) printViews(orders []OrderResult) {
	d.out.write(func(w io.Writer) error { return writeViews(w, orders) })
}

// hasAll reports whether the timeline holds every one of types.
func hasAll(timeline []TimelineEntry, types []string) bool {
	for _, t := range types {
		if !slices.ContainsFunc(timeline, func(e TimelineEntry) bool { return e.Type == t }) {
			return false
		}
	}
	return true
}
