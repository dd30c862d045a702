package app_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/shopmesh/shopmesh/contracts"
	"github.com/shopmesh/shopmesh/outbox"
	"github.com/shopmesh/shopmesh/services/loyalty/internal/app"
	"github.com/shopmesh/shopmesh/services/loyalty/internal/domain"
)

// fakeMembers keeps memberships in memory and enforces the ledger's
// uniqueness like the real store: an existing entry aborts the whole update.
type fakeMembers struct {
	members   map[string]domain.Stored
	ledger    map[string][]domain.Entry
	published []outbox.Event
}

func newFake() *fakeMembers {
	return &fakeMembers{members: map[string]domain.Stored{}, ledger: map[string][]domain.Entry{}}
}

func (f *fakeMembers) Member(_ context.Context, userID string) (*domain.Member, error) {
	s, ok := f.members[userID]
	if !ok {
		return nil, domain.ErrNotFound
	}
	return domain.FromDatabase(s)
}

func (f *fakeMembers) Entries(_ context.Context, userID string, limit int) ([]domain.Entry, error) {
	es := slices.Clone(f.ledger[userID])
	slices.Reverse(es)
	return es[:min(limit, len(es))], nil
}

func (f *fakeMembers) Update(ctx context.Context, userID string, fn app.UpdateFunc) error {
	cur, err := f.Member(ctx, userID)
	if errors.Is(err, domain.ErrNotFound) {
		cur = nil
	}
	next, events, err := fn(cur)
	if err != nil {
		return err
	}
	if next != nil {
		for _, e := range next.Added() {
			for _, entries := range f.ledger {
				for _, have := range entries {
					if e.Reason == domain.ReasonOrderCompleted && have.Reason == e.Reason && have.OrderID == e.OrderID {
						return domain.ErrAlreadyAwarded
					}
				}
			}
			if e.Reason == domain.ReasonEnrolmentBonus && slices.ContainsFunc(f.ledger[userID], func(h domain.Entry) bool { return h.Reason == e.Reason }) {
				return domain.ErrAlreadyAwarded
			}
		}
		f.ledger[userID] = append(f.ledger[userID], next.Added()...)
		f.members[userID] = domain.Stored{UserID: next.UserID(), Email: next.Email(), Status: next.Status(), Frozen: next.Frozen(),
			Balance: next.Balance(), FailReason: next.FailReason(), CreatedAt: next.CreatedAt(), UpdatedAt: next.UpdatedAt()}
	}
	f.published = append(f.published, events...)
	return nil
}

func (f *fakeMembers) types() []string {
	var out []string
	for _, e := range f.published {
		out = append(out, e.Type)
	}
	return out
}

const (
	ada   = "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f50"
	order = "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c90"
)

var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newService(t *testing.T, f *fakeMembers) *app.Service {
	t.Helper()
	s, err := app.NewService(f, domain.BonusPolicy{Points: 100, FailDomain: "bonus-fails.example"}, app.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEnrolmentWithBonus(t *testing.T) {
	f := newFake()
	s := newService(t, f)
	ctx := context.Background()
	if err := s.Enrol(ctx, ada, "ada@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := s.Enrol(ctx, ada, "ada@example.com"); err != nil { // announced again
		t.Fatal(err)
	}
	if got := f.types(); !slices.Equal(got, []string{contracts.TypeLoyaltyEnrolledV1}) {
		t.Fatalf("published %v, want one enrolment", got)
	}
	if err := s.GrantBonus(ctx, ada); err != nil {
		t.Fatal(err)
	}
	if err := s.GrantBonus(ctx, ada); err != nil { // redelivered enrolment
		t.Fatal(err)
	}
	if got := f.types(); len(got) != 2 || got[1] != contracts.TypePointsAwardedV1 {
		t.Fatalf("published %v, want enrolled then one points award", got)
	}
	award := f.published[1].Payload.(contracts.PointsAwardedV1)
	want := contracts.PointsAwardedV1{UserID: ada, Points: 100, Balance: 100, Reason: contracts.PointsEnrolmentBonus}
	if award != want || f.published[1].AggregateID != ada {
		t.Errorf("award = %+v, want %+v", award, want)
	}
	sum, err := s.Points(ctx, ada, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Enrolled || sum.Balance != 100 || len(sum.Entries) != 1 || sum.Entries[0].Reason != domain.ReasonEnrolmentBonus {
		t.Errorf("points = %+v", sum)
	}
}

func TestFailedBonusRollsBackEnrolment(t *testing.T) {
	f := newFake()
	s := newService(t, f)
	ctx := context.Background()
	const bob = "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f51"
	if err := s.Enrol(ctx, bob, "bob@bonus-fails.example"); err != nil {
		t.Fatal(err)
	}
	if err := s.GrantBonus(ctx, bob); err != nil {
		t.Fatal(err)
	}
	failed := f.published[len(f.published)-1]
	if failed.Type != contracts.TypeEnrolmentBonusFailedV1 {
		t.Fatalf("published %v, want a bonus failure last", f.types())
	}
	reason := failed.Payload.(contracts.EnrolmentBonusFailedV1).Reason
	if err := s.RollBack(ctx, bob, reason); err != nil {
		t.Fatal(err)
	}
	if err := s.RollBack(ctx, bob, reason); err != nil { // redelivered failure
		t.Fatal(err)
	}
	want := []string{contracts.TypeLoyaltyEnrolledV1, contracts.TypeEnrolmentBonusFailedV1, contracts.TypeEnrolmentRolledBackV1}
	if got := f.types(); !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
	sum, _ := s.Points(ctx, bob, 0)
	if sum.Enrolled || sum.Balance != 0 || len(sum.Entries) != 0 {
		t.Errorf("points after rollback = %+v", sum)
	}
	// A rolled-back user earns nothing, and a repeated registration does
	// not enrol again.
	if out, err := s.AwardOrder(ctx, bob, order, domain.Money{AmountMinor: 5000, Currency: "EUR"}); err != nil || out != app.OutcomeNotMember {
		t.Errorf("award to a rolled-back user = %s, %v", out, err)
	}
	if err := s.Enrol(ctx, bob, "bob@bonus-fails.example"); err != nil || len(f.published) != 3 {
		t.Errorf("re-registration: %v, published %v", err, f.types())
	}
}

func TestAwardOrderOncePerOrder(t *testing.T) {
	f := newFake()
	s := newService(t, f)
	ctx := context.Background()
	_ = s.Enrol(ctx, ada, "ada@example.com")
	_ = s.GrantBonus(ctx, ada)
	total := domain.Money{AmountMinor: 4999, Currency: "EUR"}
	out, err := s.AwardOrder(ctx, ada, order, total)
	if err != nil || out != app.OutcomeAwarded {
		t.Fatalf("award = %s, %v", out, err)
	}
	if out, err := s.AwardOrder(ctx, ada, order, total); err != nil || out != app.OutcomeAlreadyAwarded {
		t.Errorf("second award of the order = %s, %v", out, err)
	}
	award := f.published[len(f.published)-1].Payload.(contracts.PointsAwardedV1)
	if award.Points != 49 || award.Balance != 149 || award.OrderID != order || award.Reason != contracts.PointsOrderCompleted {
		t.Errorf("award = %+v", award)
	}
	if n := len(f.published); n != 3 {
		t.Errorf("published %v, want enrolled, bonus, one award", f.types())
	}
	if out, _ := s.AwardOrder(ctx, ada, "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c91", domain.Money{AmountMinor: 50, Currency: "EUR"}); out != app.OutcomeNoPoints {
		t.Errorf("tiny order: %s", out)
	}
	if out, _ := s.AwardOrder(ctx, "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4fff", order, total); out != app.OutcomeNotMember {
		t.Errorf("stranger: %s", out)
	}
	if _, err := s.AwardOrder(ctx, ada, "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c92", domain.Money{AmountMinor: -1, Currency: "EUR"}); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("negative total: %v", err)
	}

	if err := s.Freeze(ctx, ada); err != nil {
		t.Fatal(err)
	}
	if out, _ := s.AwardOrder(ctx, ada, "0190d6a5-8a41-7c52-b3d4-2e5f6a7b8c93", total); out != app.OutcomeFrozen {
		t.Errorf("frozen member: %s", out)
	}
	sum, _ := s.Points(ctx, ada, 1)
	if sum.Balance != 149 || len(sum.Entries) != 1 || sum.Entries[0].OrderID != order {
		t.Errorf("points of a frozen member (limit 1) = %+v", sum)
	}
}

func TestDeactivationBeforeRegistration(t *testing.T) {
	f := newFake()
	s := newService(t, f)
	ctx := context.Background()
	if err := s.Freeze(ctx, ada); err != nil {
		t.Fatal(err)
	}
	if err := s.Enrol(ctx, ada, "ada@example.com"); err != nil {
		t.Fatal(err)
	}
	if len(f.published) != 0 {
		t.Errorf("a deactivated user was enrolled: %v", f.types())
	}
}

func TestPointsInput(t *testing.T) {
	s := newService(t, newFake())
	ctx := context.Background()
	if _, err := s.Points(ctx, "", 0); !errors.Is(err, app.ErrUnauthenticated) {
		t.Errorf("no caller: %v", err)
	}
	for _, limit := range []int{-1, app.MaxEntries + 1} {
		if _, err := s.Points(ctx, ada, limit); !errors.Is(err, app.ErrBadLimit) {
			t.Errorf("limit %d: %v", limit, err)
		}
	}
	sum, err := s.Points(ctx, "not-a-uuid", 0)
	if err != nil || sum.Enrolled || sum.Entries == nil {
		t.Errorf("malformed id: %+v, %v", sum, err)
	}
	if err := s.GrantBonus(ctx, ada); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("bonus of an unknown enrolment: %v, want ErrNotFound", err)
	}
}
