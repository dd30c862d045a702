package bench

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// A checkout's time is split at its order's timeline entries, each step
// sorted on its own over the confirmed checkouts; a checkout that failed
// counts in none.
func TestStepLatenciesSplitEachCheckoutAtItsSagaSteps(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	lr := loadResult{outcomes: []orderOutcome{
		{sent: at(0), sagaSteps: sagaSteps{placed: at(5), reserved: at(30), confirmed: at(40)}},
		{sent: at(100), sagaSteps: sagaSteps{placed: at(102), reserved: at(110), confirmed: at(150)}},
		{sent: at(200), err: errors.New("order x ended cancelled")},
	}}
	got := lr.stepLatencies()
	want := [len(stepNames)][]time.Duration{
		{2 * time.Millisecond, 5 * time.Millisecond},
		{8 * time.Millisecond, 25 * time.Millisecond},
		{10 * time.Millisecond, 40 * time.Millisecond},
	}
	for i := range stepNames {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("%s: got %v, want %v", stepNames[i], got[i], want[i])
		}
	}
}

// A phase is flagged as disturbed once the host took a tenth of the
// machine's CPU time, not below.
func TestStealNoteFlagsAPhaseTheHostDisturbed(t *testing.T) {
	if got := stealNote(variantAll, 1, "at full speed", 9.9); got != "" {
		t.Errorf("note at 9.9%% steal = %q, want none", got)
	}
	got := stealNote(variantAll, 1, "at full speed", 52.3)
	if want := "serve all round 2 lost 52% of the machine's CPU time to the host at full speed"; !strings.HasPrefix(got, want) {
		t.Errorf("note at 52.3%% steal = %q, want it to start %q", got, want)
	}
}

// A part that used clearly less over a phase than its idle rate accounts
// for is counted as zero and named, so that the zero is not read as a
// measurement; a part that used more is counted beyond its idle rate, and
// one that fell short by a few ticks, or by less than a tenth of its idle
// use, is counted as zero without a word.
func TestCPUBelowTheIdleRateIsNamedNotMeasured(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	before := cpuSample{at: t0, used: map[string]time.Duration{
		cpuPostgres: 10 * time.Second, cpuRabbitMQ: 5 * time.Second, "order": time.Second, "user": time.Second,
		"catalog": time.Second,
	}}
	after := cpuSample{at: t0.Add(10 * time.Second), used: map[string]time.Duration{
		cpuPostgres: 10*time.Second + 300*time.Millisecond, // idle would have used 500 ms
		cpuRabbitMQ: 5*time.Second + 2*time.Second,         // idle would have used 200 ms
		"order":     time.Second + 100*time.Millisecond,    // idle would have used exactly that
		"user":      time.Second + 10*time.Millisecond,     // idle would have used 40 ms: tick jitter
		"catalog":   time.Second + 1900*time.Millisecond,   // idle would have used 2 s: within its spread
	}}
	idle := map[string]float64{cpuPostgres: 50e6, cpuRabbitMQ: 20e6, "order": 10e6, "user": 4e6, "catalog": 200e6} // ns of CPU per second
	used, below := after.sinceIdle(before, idle)
	want := map[string]time.Duration{cpuPostgres: 0, cpuRabbitMQ: 1800 * time.Millisecond, "order": 0, "user": 0, "catalog": 0}
	for name, d := range want {
		if used[name] != d {
			t.Errorf("%s used %v beyond idle, want %v", name, used[name], d)
		}
	}
	if !slices.Equal(below, []string{cpuPostgres}) {
		t.Errorf("below the idle rate: %v, want only %s", below, cpuPostgres)
	}
	note := belowIdleNote(variantSplit, 0, "at 50/s", below)
	if want := "split round 1 at 50/s: PostgreSQL used less CPU than at rest over the same time, so its CPU per checkout shows 0"; !strings.HasPrefix(note, want) {
		t.Errorf("note %q, want it to start %q", note, want)
	}
	// A service process below its idle rate has no figure of its own to
	// misread; the servers do.
	if note := belowIdleNote(variantSplit, 0, "at full speed", []string{"user"}); note != "" {
		t.Errorf("note for the user service alone: %q, want none", note)
	}
	note = belowIdleNote(variantAll, 1, "at full speed", []string{cpuPostgres, cpuRabbitMQ, "user"})
	if want := "serve all round 2 at full speed: PostgreSQL, RabbitMQ used less CPU than at rest over the same time, so their CPU per checkout shows 0"; !strings.HasPrefix(note, want) {
		t.Errorf("note %q, want it to start %q", note, want)
	}
}
