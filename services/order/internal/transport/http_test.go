package transport

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/internal/httpkit"
	"github.com/shopmesh/shopmesh/internal/wait"
	"github.com/shopmesh/shopmesh/services/order/internal/app"
	"github.com/shopmesh/shopmesh/services/order/internal/domain"
)

const (
	testOrder = "0190a1b2-0000-7000-8000-000000000001"
	testUser  = "0190a1b2-0000-7000-8000-0000000000aa"
)

// fakeOrders serves one order, which a test can place and move through
// the saga; until placed it is not found.
type fakeOrders struct {
	mu        sync.Mutex
	saga      domain.Saga
	order     *domain.Order
	reads     int // whole orders
	revisions int // revision checks
}

func newFakeOrders(t *testing.T) *fakeOrders {
	t.Helper()
	saga, err := domain.NewSaga(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeOrders{saga: saga}
}

func (f *fakeOrders) place(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	eur := func(minor int64) domain.Money { return domain.Money{AmountMinor: minor, Currency: "EUR"} }
	o, _, err := f.saga.Place(domain.Placement{
		ID: testOrder, UserID: testUser,
		Lines:           []domain.Line{{ProductID: "0190a1b2-0000-7000-8000-0000000000f1", SKU: "A-1", Name: "Mug", Quantity: 2, UnitPrice: eur(1250)}},
		Total:           eur(2500),
		ShippingAddress: domain.Address{Name: "Ada", Line1: "1 Main St", City: "Berlin", PostalCode: "10115", Country: "DE"},
		PaymentToken:    "tok_ok",
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f.order = o
}

// reserve moves the order on: its stock is reserved.
func (f *fakeOrders) reserve() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.saga.Apply(f.order, domain.StockReserved{}, time.Now())
}

func (f *fakeOrders) Get(_ context.Context, user domain.UserID, id domain.OrderID) (*domain.Order, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.order == nil || id != f.order.ID() || !f.order.BelongsTo(user) {
		return nil, domain.ErrNotFound
	}
	return domain.FromDatabase(f.order.Snapshot())
}

func (f *fakeOrders) Revision(_ context.Context, user domain.UserID, id domain.OrderID) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revisions++
	if f.order == nil || id != f.order.ID() || !f.order.BelongsTo(user) {
		return 0, domain.ErrNotFound
	}
	return f.order.Revision(), nil
}

// counts returns the whole-order reads and revision checks so far.
func (f *fakeOrders) counts() (reads, revisions int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads, f.revisions
}

func (f *fakeOrders) List(context.Context, domain.UserID, app.ListQuery) (app.ListResult, error) {
	return app.ListResult{}, nil
}

func (f *fakeOrders) Cancel(context.Context, domain.UserID, domain.OrderID) (*domain.Order, error) {
	return nil, domain.ErrNotFound
}

// get reads the order as the gateway forwards it, with extra headers.
func get(t *testing.T, h http.Handler, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/api/v1/orders/"+testOrder, nil)
	r.Header.Set(httpkit.HeaderUserID, testUser)
	r.Header.Set(httpkit.HeaderUserRole, "customer")
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// getAsync reads in the background; the answer arrives on the channel.
func getAsync(t *testing.T, h http.Handler, header ...string) <-chan *httptest.ResponseRecorder {
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- get(t, h, header...) }()
	return done
}

func await(t *testing.T, done <-chan *httptest.ResponseRecorder, within time.Duration) *httptest.ResponseRecorder {
	t.Helper()
	select {
	case w := <-done:
		return w
	case <-time.After(within):
		t.Fatalf("no answer within %s", within)
		return nil
	}
}

// waitWatched waits until n orders are waited on.
func waitWatched(t *testing.T, changes *Changes, n int) {
	t.Helper()
	poll(t, 10*time.Second, fmt.Sprintf("%d orders waited on", n), func() bool { return changes.watched() == n })
}

// poll waits, at most within, until cond holds.
func poll(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := wait.Poll(ctx, time.Millisecond, what, func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatal(err)
	}
}

func newTestHandler(orders *fakeOrders, changes *Changes, recheck time.Duration) http.Handler {
	return newHTTPHandler(orders, changes, slog.New(slog.DiscardHandler), recheck)
}

// servePlaced places the order, serves it and reads its entity tag.
func servePlaced(t *testing.T, recheck time.Duration) (orders *fakeOrders, changes *Changes, h http.Handler, etag string) {
	t.Helper()
	orders, changes = newFakeOrders(t), NewChanges()
	orders.place(t)
	h = newTestHandler(orders, changes, recheck)
	return orders, changes, h, get(t, h).Header().Get("ETag")
}

// A read carries the order's entity tag; naming it in If-None-Match (as
// is, weak, in a list or as *) answers 304 without a body, and the tag
// changes with the order.
func TestConditionalReadOfAnOrder(t *testing.T) {
	t.Parallel()
	orders, _, h, etag := servePlaced(t, time.Hour)
	if etag == "" {
		t.Fatal("GET answered without an ETag")
	}
	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		w := get(t, h, "If-None-Match", inm)
		if w.Code != http.StatusNotModified || w.Body.Len() != 0 || w.Header().Get("ETag") != etag {
			t.Errorf("If-None-Match %s: %d, %d bytes, ETag %q; want 304, no body, %s", inm, w.Code, w.Body.Len(), w.Header().Get("ETag"), etag)
		}
	}
	if w := get(t, h, "If-None-Match", `"other"`); w.Code != http.StatusOK {
		t.Errorf("If-None-Match naming another tag: %d, want 200", w.Code)
	}
	orders.reserve()
	w := get(t, h, "If-None-Match", etag)
	if w.Code != http.StatusOK || w.Header().Get("ETag") == etag {
		t.Errorf("after a change: %d with ETag %q, want 200 with a new tag", w.Code, w.Header().Get("ETag"))
	}
}

// A read that asks to wait answers as soon as the order changes, whether it
// was unchanged or not there yet; without a change it answers when the
// wait is over. Either way nothing stays registered.
func TestLongPollAnswersAtTheChange(t *testing.T) {
	t.Parallel()
	orders := newFakeOrders(t)
	changes := NewChanges()
	h := newTestHandler(orders, changes, time.Hour) // only a change can wake it

	// Not placed yet: the read waits for the order to appear.
	done := getAsync(t, h, "Prefer", "wait=10")
	waitWatched(t, changes, 1)
	orders.place(t)
	changes.Changed(testOrder)
	w := await(t, done, 9*time.Second)
	etag := w.Header().Get("ETag")
	if w.Code != http.StatusOK || etag == "" || w.Header().Get("Preference-Applied") != "wait=10" {
		t.Fatalf("waiting for a new order: %d, ETag %q, Preference-Applied %q", w.Code, etag, w.Header().Get("Preference-Applied"))
	}

	// Unchanged: it waits for the next change.
	done = getAsync(t, h, "If-None-Match", etag, "Prefer", "respond-async, wait=10")
	waitWatched(t, changes, 1)
	changes.Changed(testOrder) // a change that leaves the representation as it was
	waitWatched(t, changes, 1)
	orders.reserve()
	changes.Changed(testOrder)
	w = await(t, done, 9*time.Second)
	if w.Code != http.StatusOK || w.Header().Get("ETag") == etag {
		t.Fatalf("waiting for a change: %d with ETag %q (had %q)", w.Code, w.Header().Get("ETag"), etag)
	}
	etag = w.Header().Get("ETag")

	// Nothing changes: 304 once the wait is over.
	began := time.Now()
	w = get(t, h, "If-None-Match", etag, "Prefer", "wait=1")
	if w.Code != http.StatusNotModified || w.Header().Get("Preference-Applied") != "wait=1" {
		t.Errorf("an unchanged order after the wait: %d, Preference-Applied %q; want 304, wait=1", w.Code, w.Header().Get("Preference-Applied"))
	}
	if waited := time.Since(began); waited < time.Second {
		t.Errorf("answered after %s, before the wait was over", waited)
	}
	if n := changes.watched(); n != 0 {
		t.Errorf("%d orders still waited on after every read answered", n)
	}
}

// A change that this process does not hear of (another replica's) reaches
// a waiting read at its next recheck. A recheck reads the order's revision,
// and the whole order only once that moved.
func TestLongPollRechecksForChangesItIsNotToldOf(t *testing.T) {
	t.Parallel()
	orders, changes, h, etag := servePlaced(t, 20*time.Millisecond)
	done := getAsync(t, h, "If-None-Match", etag, "Prefer", "wait=10")
	waitWatched(t, changes, 1)
	reads, _ := orders.counts()
	poll(t, 5*time.Second, "3 rechecks, with a recheck every 20ms", func() bool {
		_, revisions := orders.counts()
		return revisions >= 3
	})
	if now, _ := orders.counts(); now != reads {
		t.Errorf("rechecks of an unchanged order read it whole %d times", now-reads)
	}
	orders.reserve()
	w := await(t, done, 9*time.Second)
	if w.Code != http.StatusOK || w.Header().Get("ETag") == etag {
		t.Errorf("%d with ETag %q, want 200 with a new tag", w.Code, w.Header().Get("ETag"))
	}
}

// A read of an order that is not there, without a wait, is 404 at once;
// so is another customer's order, which a wait does not reveal either.
func TestReadWithoutWaitAnswersAtOnce(t *testing.T) {
	t.Parallel()
	orders := newFakeOrders(t)
	h := newTestHandler(orders, NewChanges(), time.Hour)
	if w := get(t, h); w.Code != http.StatusNotFound {
		t.Errorf("an order not placed yet: %d, want 404", w.Code)
	}
	orders.place(t)
	r := httptest.NewRequest(http.MethodGet, "/api/v1/orders/"+testOrder, nil)
	r.Header.Set(httpkit.HeaderUserID, "0190a1b2-0000-7000-8000-0000000000bb")
	r.Header.Set("Prefer", "wait=1")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNotFound {
		t.Errorf("another customer's order after a wait: %d, want 404", w.Code)
	}
}

func TestPreferredWait(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		values []string
		want   time.Duration
	}{
		{nil, 0},
		{[]string{"wait=5"}, 5 * time.Second},
		{[]string{"respond-async, wait=3"}, 3 * time.Second},
		{[]string{"return=minimal", "WAIT = 2"}, 2 * time.Second},
		{[]string{`wait="4"`}, 4 * time.Second},
		{[]string{"wait=4;foo=bar"}, 4 * time.Second},
		{[]string{"wait=600"}, MaxWait},
		{[]string{"wait=-1"}, 0},
		{[]string{"wait=soon"}, 0},
		{[]string{"waiting=5"}, 0},
	} {
		if got := preferredWait(c.values); got != c.want {
			t.Errorf("preferredWait(%q) = %s, want %s", c.values, got, c.want)
		}
	}
}

// Reads that stop waiting, woken or not, leave nothing behind.
func TestChangesForgetsWhatNobodyWaitsOn(t *testing.T) {
	t.Parallel()
	c := NewChanges()
	ids := make([]domain.OrderID, 3)
	for i := range ids {
		ids[i] = domain.OrderID(fmt.Sprintf("0190a1b2-0000-7000-8000-00000000000%d", i))
	}
	ch0, release0 := c.watch(ids[0])
	ch0b, release0b := c.watch(ids[0])
	_, release1 := c.watch(ids[1])
	c.Changed(ids[0])
	c.Changed(ids[2]) // nobody waits
	for _, ch := range []<-chan struct{}{ch0, ch0b} {
		select {
		case <-ch:
		default:
			t.Error("a read waiting on the changed order was not woken")
		}
	}
	ch0c, release0c := c.watch(ids[0]) // after the change: waits for the next one
	select {
	case <-ch0c:
		t.Error("a read that began after the change was woken by it")
	default:
	}
	release0()
	release0b()
	release1()
	if n := c.watched(); n != 1 {
		t.Errorf("%d orders waited on, want 1", n)
	}
	release0c()
	if n := c.watched(); n != 0 {
		t.Errorf("%d orders waited on after every read stopped, want 0", n)
	}
}

// A stopping service answers a waiting read at once, with what it has.
func TestLongPollEndsWhenTheServiceStops(t *testing.T) {
	t.Parallel()
	_, changes, h, etag := servePlaced(t, time.Hour)
	ctx, stop := context.WithCancel(context.Background())
	go changes.Run(ctx) //nolint:errcheck // returns nil when ctx ends
	done := getAsync(t, h, "If-None-Match", etag, "Prefer", "wait=10")
	waitWatched(t, changes, 1)
	stop()
	if w := await(t, done, 9*time.Second); w.Code != http.StatusNotModified {
		t.Errorf("a read waiting while the service stops: %d, want 304", w.Code)
	}
	// Reads that arrive while it stops do not wait either.
	if w := await(t, getAsync(t, h, "If-None-Match", etag, "Prefer", "wait=10"), 9*time.Second); w.Code != http.StatusNotModified {
		t.Errorf("a read arriving while the service stops: %d, want 304", w.Code)
	}
}
