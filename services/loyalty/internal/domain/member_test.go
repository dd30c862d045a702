package domain

import (
	"errors"
	"testing"
	"time"
)

var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const user = "0190d6a4-1c2b-7e3a-9f10-6b1c2d3e4f50"

func TestPointsFor(t *testing.T) {
	cases := []struct {
		total   Money
		want    int
		wantErr error
	}{
		{Money{1299, "EUR"}, 12, nil},
		{Money{99, "EUR"}, 0, nil},
		{Money{0, "EUR"}, 0, nil},
		{Money{1500, "JPY"}, 1500, nil},
		{Money{12345, "KWD"}, 12, nil},
		{Money{-1, "EUR"}, 0, ErrInvalid},
		{Money{100, "eur"}, 0, ErrInvalid},
		{Money{100, "EURO"}, 0, ErrInvalid},
		{Money{1 << 62, "EUR"}, 0, ErrBalanceOverflow},
	}
	for _, c := range cases {
		got, err := PointsFor(c.total)
		if got != c.want || !errors.Is(err, c.wantErr) {
			t.Errorf("PointsFor(%+v) = %d, %v; want %d, %v", c.total, got, err, c.want, c.wantErr)
		}
	}
}

func TestEnrolmentBonusGranted(t *testing.T) {
	m, err := Enrol(user, "ada@example.com", now)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Enrolled() || m.Status() != StatusEnrolling || m.Balance() != 0 {
		t.Fatalf("new member = %+v", m)
	}
	e, reason, err := m.GrantBonus(BonusPolicy{Points: 100, FailDomain: "bonus-fails.example"}, now)
	if err != nil || reason != "" || e == nil {
		t.Fatalf("GrantBonus = %v, %q, %v", e, reason, err)
	}
	if e.Points != 100 || e.Reason != ReasonEnrolmentBonus || e.OrderID != "" {
		t.Errorf("entry = %+v", e)
	}
	if m.Status() != StatusActive || m.Balance() != 100 || len(m.Added()) != 1 {
		t.Errorf("member after bonus: status %s balance %d added %d", m.Status(), m.Balance(), len(m.Added()))
	}
	if _, _, err := m.GrantBonus(BonusPolicy{Points: 100}, now); !errors.Is(err, ErrNotEnrolling) {
		t.Errorf("second GrantBonus: %v, want ErrNotEnrolling", err)
	}
	if err := m.RollBack(now); !errors.Is(err, ErrNotBonusFailed) {
		t.Errorf("RollBack of an active member: %v, want ErrNotBonusFailed", err)
	}
}

func TestEnrolmentBonusFailsAndRollsBack(t *testing.T) {
	cases := []struct {
		name   string
		email  string
		frozen bool
	}{
		{"failing domain", "bob@Bonus-Fails.example", false},
		{"deactivated before the bonus", "bob@example.com", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, _ := Enrol(user, c.email, now)
			if c.frozen {
				m.Freeze(now)
			}
			e, reason, err := m.GrantBonus(BonusPolicy{Points: 100, FailDomain: "bonus-fails.example"}, now)
			if err != nil || e != nil || reason == "" {
				t.Fatalf("GrantBonus = %v, %q, %v; want a failure reason", e, reason, err)
			}
			if m.Status() != StatusBonusFailed || m.FailReason() != reason || m.Balance() != 0 || len(m.Added()) != 0 {
				t.Errorf("member after failed bonus = %+v", m)
			}
			if !m.Enrolled() {
				t.Error("enrolment is undone before the rollback")
			}
			if err := m.RollBack(now); err != nil {
				t.Fatal(err)
			}
			if m.Status() != StatusRolledBack || m.Enrolled() {
				t.Errorf("after rollback: status %s enrolled %v", m.Status(), m.Enrolled())
			}
			if err := m.RollBack(now); !errors.Is(err, ErrNotBonusFailed) {
				t.Errorf("second RollBack: %v", err)
			}
		})
	}
}

func TestAwardOrder(t *testing.T) {
	active := func() *Member {
		m, _ := Enrol(user, "ada@example.com", now)
		if _, _, err := m.GrantBonus(BonusPolicy{Points: 100}, now); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := active()
	e, err := m.AwardOrder("order-1", Money{4999, "EUR"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if e.Points != 49 || e.Reason != ReasonOrderCompleted || e.OrderID != "order-1" || m.Balance() != 149 {
		t.Errorf("award = %+v, balance %d", e, m.Balance())
	}

	enrolling, _ := Enrol(user, "ada@example.com", now)
	frozen := active()
	frozen.Freeze(now)
	full := active()
	full.balance = MaxPoints - 10
	cases := []struct {
		name  string
		m     *Member
		order string
		total Money
		want  error
	}{
		{"bonus pending", enrolling, "o", Money{1000, "EUR"}, ErrNotMember},
		{"frozen", frozen, "o", Money{1000, "EUR"}, ErrFrozen},
		{"below one unit", active(), "o", Money{99, "EUR"}, ErrNoPoints},
		{"no order id", active(), "", Money{1000, "EUR"}, ErrInvalid},
		{"bad currency", active(), "o", Money{1000, "E"}, ErrInvalid},
		{"overflow", full, "o", Money{2000, "EUR"}, ErrBalanceOverflow},
	}
	for _, c := range cases {
		before := c.m.Balance()
		if _, err := c.m.AwardOrder(c.order, c.total, now); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if c.m.Balance() != before {
			t.Errorf("%s: balance changed %d -> %d", c.name, before, c.m.Balance())
		}
	}
}

func TestDeactivatedBeforeRegistration(t *testing.T) {
	m, err := Deactivated(user, now)
	if err != nil {
		t.Fatal(err)
	}
	if m.Enrolled() || !m.Frozen() || m.Status() != StatusNotEnrolled {
		t.Errorf("deactivated placeholder = %+v", m)
	}
	if m.Freeze(now) {
		t.Error("freezing a frozen member reported a change")
	}
	if _, _, err := m.GrantBonus(BonusPolicy{Points: 1}, now); !errors.Is(err, ErrNotEnrolling) {
		t.Errorf("bonus of a never-enrolled user: %v", err)
	}
}

func TestFromDatabaseRejectsInvalidRows(t *testing.T) {
	good := Stored{UserID: user, Status: StatusActive, Balance: 5}
	if _, err := FromDatabase(good); err != nil {
		t.Fatalf("valid row: %v", err)
	}
	for _, s := range []Stored{
		{Status: StatusActive},
		{UserID: user, Status: "gold"},
		{UserID: user, Status: StatusActive, Balance: -1},
	} {
		if _, err := FromDatabase(s); err == nil {
			t.Errorf("FromDatabase(%+v) accepted an invalid row", s)
		}
	}
}

func TestBonusPolicyValidate(t *testing.T) {
	for _, p := range []BonusPolicy{{Points: 0}, {Points: -5}, {Points: 1, FailDomain: "a@b"}, {Points: 1, FailDomain: "a b"}} {
		if p.Validate() == nil {
			t.Errorf("%+v validated", p)
		}
	}
	if err := (BonusPolicy{Points: 100, FailDomain: "bonus-fails.example"}).Validate(); err != nil {
		t.Error(err)
	}
}
