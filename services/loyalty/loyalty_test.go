package loyalty_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/loyalty"
)

type pointsView struct {
	Balance  int         `json:"balance"`
	Enrolled bool        `json:"enrolled"`
	Entries  []entryView `json:"entries"`
}

type entryView struct {
	Points  int       `json:"points"`
	Reason  string    `json:"reason"`
	OrderID *string   `json:"order_id"`
	At      time.Time `json:"at"`
}

func registered(userID, email string) contracts.UserRegisteredV1 {
	return contracts.UserRegisteredV1{UserID: userID, Email: email, Name: "Ada"}
}

func TestEnrolmentBonusAndOrderPointsExactlyOnce(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	ada := newID()

	// Registration delivered twice: one enrolment, one bonus.
	regID := newID()
	h.Publish(regID, contracts.TypeUserRegisteredV1, ada, registered(ada, "ada@example.com"))
	h.Publish(regID, contracts.TypeUserRegisteredV1, ada, registered(ada, "ada@example.com"))
	h.Eventually("the enrolment bonus", func() bool { return h.count(contracts.TypePointsAwardedV1) == 1 })

	enrolled := published[contracts.LoyaltyEnrolledV1](h, contracts.TypeLoyaltyEnrolledV1)
	if len(enrolled) != 1 || enrolled[0].UserID != ada {
		t.Errorf("enrolled events = %+v, want one for %s", enrolled, ada)
	}
	bonus := published[contracts.PointsAwardedV1](h, contracts.TypePointsAwardedV1)[0]
	if want := (contracts.PointsAwardedV1{UserID: ada, Points: loyalty.DefaultEnrolmentBonus, Balance: 100, Reason: contracts.PointsEnrolmentBonus}); bonus != want {
		t.Errorf("bonus = %+v, want %+v", bonus, want)
	}
	var p pointsView
	h.getJSON("/api/v1/me/points", ada, &p)
	if !p.Enrolled || p.Balance != 100 || len(p.Entries) != 1 || p.Entries[0].Reason != "enrolment_bonus" ||
		p.Entries[0].OrderID != nil || p.Entries[0].Points != 100 || p.Entries[0].At.IsZero() {
		t.Errorf("points after enrolment = %+v", p)
	}

	// A completed order: redelivered, and re-announced under a new id.
	order := newID()
	completed := contracts.OrderCompletedV1{OrderID: order, UserID: ada, Total: eur(4999)}
	first := newID()
	h.Publish(first, contracts.TypeOrderCompletedV1, order, completed)
	h.Publish(first, contracts.TypeOrderCompletedV1, order, completed)
	h.Publish(newID(), contracts.TypeOrderCompletedV1, order, completed)
	// Another order, so that the wait below cannot end before the ones above.
	small := newID()
	h.Publish(newID(), contracts.TypeOrderCompletedV1, small, contracts.OrderCompletedV1{OrderID: small, UserID: ada, Total: eur(1000)})
	h.Eventually("both orders' points", func() bool { return h.count(contracts.TypePointsAwardedV1) >= 3 })
	h.Eventually("every message applied", func() bool { return h.Applied() == 5 && h.Duplicates() == 2 })

	awards := published[contracts.PointsAwardedV1](h, contracts.TypePointsAwardedV1)
	if len(awards) != 3 {
		t.Fatalf("points awards = %+v, want bonus + one per order", awards)
	}
	byOrder := map[string]contracts.PointsAwardedV1{}
	for _, a := range awards[1:] {
		byOrder[a.OrderID] = a
	}
	if a := byOrder[order]; a.Points != 49 || a.Reason != contracts.PointsOrderCompleted || a.UserID != ada {
		t.Errorf("award for the 49.99 order = %+v", a)
	}
	if a := byOrder[small]; a.Points != 10 {
		t.Errorf("award for the 10.00 order = %+v", a)
	}
	if n := h.Query(`SELECT count(*) FROM ledger WHERE order_id = $1`, order); n != 1 {
		t.Errorf("ledger entries for the order = %d, want 1", n)
	}
	h.getJSON("/api/v1/me/points", ada, &p)
	if p.Balance != 159 || len(p.Entries) != 3 {
		t.Errorf("points = %+v, want 159 over 3 entries", p)
	}
	for i := 1; i < len(p.Entries); i++ {
		if p.Entries[i].At.After(p.Entries[i-1].At) {
			t.Errorf("entry %d is newer than entry %d", i, i-1)
		}
	}
	h.getJSON("/api/v1/me/points?limit=1", ada, &p)
	if len(p.Entries) != 1 || p.Balance != 159 {
		t.Errorf("limit=1: %+v", p)
	}

	// Deactivation freezes the membership: the balance stays, no new points.
	h.Publish(newID(), contracts.TypeUserDeactivatedV1, ada, contracts.UserDeactivatedV1{UserID: ada, Reason: "fraud"})
	h.Eventually("the freeze", func() bool { return h.Query(`SELECT count(*) FROM members WHERE frozen`) == 1 })
	late := newID()
	h.Publish(newID(), contracts.TypeOrderCompletedV1, late, contracts.OrderCompletedV1{OrderID: late, UserID: ada, Total: eur(9999)})
	h.Eventually("the late order to be handled", func() bool { return h.Applied() == 7 })
	h.getJSON("/api/v1/me/points", ada, &p)
	if p.Balance != 159 || len(p.Entries) != 3 || !p.Enrolled {
		t.Errorf("points of a frozen member = %+v", p)
	}
	if n := h.count(contracts.TypePointsAwardedV1); n != 3 {
		t.Errorf("points awards = %d, want still 3", n)
	}

	// Customers who never enrolled earn nothing and see an empty standing.
	stranger, strangerOrder := newID(), newID()
	h.Publish(newID(), contracts.TypeOrderCompletedV1, strangerOrder, contracts.OrderCompletedV1{OrderID: strangerOrder, UserID: stranger, Total: eur(5000)})
	h.Eventually("the stranger's order to be handled", func() bool { return h.Applied() == 8 })
	h.getJSON("/api/v1/me/points", stranger, &p)
	if p.Enrolled || p.Balance != 0 || p.Entries == nil || len(p.Entries) != 0 {
		t.Errorf("a stranger's points = %+v", p)
	}
}

func TestFailedBonusRollsTheEnrolmentBack(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *loyalty.Config) { c.BonusFailDomain = "bonus-fails.example" })
	bob, ada := newID(), newID()
	h.Publish(newID(), contracts.TypeUserRegisteredV1, bob, registered(bob, "bob@bonus-fails.example"))
	h.Publish(newID(), contracts.TypeUserRegisteredV1, ada, registered(ada, "ada@example.com"))
	h.Eventually("the rollback", func() bool { return h.count(contracts.TypeEnrolmentRolledBackV1) == 1 })
	h.Eventually("ada's bonus", func() bool { return h.count(contracts.TypePointsAwardedV1) == 1 })

	failed := published[contracts.EnrolmentBonusFailedV1](h, contracts.TypeEnrolmentBonusFailedV1)
	if len(failed) != 1 || failed[0].UserID != bob || failed[0].Reason == "" {
		t.Errorf("bonus failures = %+v, want one for bob", failed)
	}
	rolled := published[contracts.EnrolmentRolledBackV1](h, contracts.TypeEnrolmentRolledBackV1)
	if rolled[0].UserID != bob || rolled[0].Reason == "" {
		t.Errorf("rollback = %+v", rolled[0])
	}
	if a := published[contracts.PointsAwardedV1](h, contracts.TypePointsAwardedV1); a[0].UserID != ada {
		t.Errorf("the bonus went to %s, want ada", a[0].UserID)
	}
	// Events of the saga go out in order, each exactly once.
	var bobs []string
	for _, m := range h.Events("") {
		if m.AggregateID == bob {
			bobs = append(bobs, m.Type)
		}
	}
	want := []string{contracts.TypeLoyaltyEnrolledV1, contracts.TypeEnrolmentBonusFailedV1, contracts.TypeEnrolmentRolledBackV1}
	if len(bobs) != len(want) {
		t.Fatalf("bob's events = %v, want %v", bobs, want)
	}
	for i := range want {
		if bobs[i] != want[i] {
			t.Errorf("bob's event %d = %s, want %s", i, bobs[i], want[i])
		}
	}

	var p pointsView
	h.getJSON("/api/v1/me/points", bob, &p)
	if p.Enrolled || p.Balance != 0 || len(p.Entries) != 0 {
		t.Errorf("points after rollback = %+v", p)
	}
	// A rolled-back user earns nothing for orders.
	order := newID()
	h.Publish(newID(), contracts.TypeOrderCompletedV1, order, contracts.OrderCompletedV1{OrderID: order, UserID: bob, Total: eur(5000)})
	h.Eventually("bob's order to be handled", func() bool {
		return h.Query(`SELECT count(*) FROM inbox WHERE type = $1`, contracts.TypeOrderCompletedV1) == 1
	})
	if n := h.Query(`SELECT count(*) FROM ledger l JOIN members m USING (user_id) WHERE m.user_id = $1`, bob); n != 0 {
		t.Errorf("bob's ledger has %d entries", n)
	}
	if s := h.Query(`SELECT count(*) FROM members WHERE user_id = $1 AND status = 'rolled_back'`, bob); s != 1 {
		t.Error("bob's membership is not rolled back")
	}
}

func TestInvalidEventsAreDeadLettered(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	ada := newID()
	badID := newID()
	// Schema violation: a negative total.
	h.Publish(badID, contracts.TypeOrderCompletedV1, ada, []byte(`{"order_id":"`+newID()+`","user_id":"`+ada+`","total":{"amount_minor":-5,"currency":"EUR"}}`))
	h.Publish(newID(), contracts.TypeUserRegisteredV1, ada, registered(ada, "ada@example.com"))
	h.Eventually("ada's bonus", func() bool { return h.count(contracts.TypePointsAwardedV1) == 1 })
	h.Eventually("the dead letter", func() bool {
		dls, err := outbox.ListDeadLetters(context.Background(), h.pool, false)
		return err == nil && len(dls) == 1 && dls[0].MessageID == badID
	})
	if n := h.Query(`SELECT count(*) FROM ledger WHERE reason = 'order_completed'`); n != 0 {
		t.Errorf("the invalid event credited %d entries", n)
	}
}

func TestPointsAPIRejectsBadRequests(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	user := newID()
	cases := []struct {
		name, method, path, user string
		want                     int
	}{
		{"no identity", http.MethodGet, "/api/v1/me/points", "", http.StatusUnauthorized},
		{"limit not a number", http.MethodGet, "/api/v1/me/points?limit=abc", user, http.StatusUnprocessableEntity},
		{"limit zero", http.MethodGet, "/api/v1/me/points?limit=0", user, http.StatusUnprocessableEntity},
		{"limit negative", http.MethodGet, "/api/v1/me/points?limit=-3", user, http.StatusUnprocessableEntity},
		{"limit absurd", http.MethodGet, "/api/v1/me/points?limit=99999999999999999999", user, http.StatusUnprocessableEntity},
		{"limit twice", http.MethodGet, "/api/v1/me/points?limit=1&limit=2", user, http.StatusUnprocessableEntity},
		{"unknown parameter", http.MethodGet, "/api/v1/me/points?page=2", user, http.StatusUnprocessableEntity},
		{"malformed query", http.MethodGet, "/api/v1/me/points?limit=%zz", user, http.StatusBadRequest},
		{"wrong method", http.MethodPost, "/api/v1/me/points", user, http.StatusMethodNotAllowed},
		{"unknown route", http.MethodGet, "/api/v1/me/pointz", user, http.StatusNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := h.For(t).do(c.method, c.path, c.user, "customer", []byte(`{"points": 1000000}`))
			if res.Status != c.want || res.ContentType != "application/problem+json" {
				t.Errorf("%s %s: %d %s %s, want %d problem+json", c.method, c.path, res.Status, res.ContentType, res.Body, c.want)
			}
		})
	}
	var p pointsView
	h.getJSON("/api/v1/me/points", "not-a-uuid", &p)
	if p.Enrolled || p.Balance != 0 {
		t.Errorf("malformed identity: %+v", p)
	}
	if n := h.Query(`SELECT count(*) FROM members`); n != 0 {
		t.Errorf("requests created %d members", n)
	}
}
