package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a chaos run: one Result per scenario.
type Report struct {
	Seed     int64         `json:"seed"`
	Short    bool          `json:"short"`
	Orders   int           `json:"orders_per_scenario"`
	Services []string      `json:"services"`
	Runs     []Result      `json:"runs"`
	Duration time.Duration `json:"-"`
}

// Passed reports whether every scenario ran and every invariant held.
func (r *Report) Passed() bool {
	if len(r.Runs) == 0 {
		return false
	}
	for _, x := range r.Runs {
		if !x.Passed() {
			return false
		}
	}
	return true
}

// Result is one scenario's run.
type Result struct {
	Scenario string `json:"scenario"`
	Seed     int64  `json:"seed"`
	// Planned orders; Orders is how many checkouts were accepted.
	Planned int `json:"planned"`
	Orders  int `json:"orders"`
	// Faults is what was injected, in order. Targeted counts the protocol
	// moments (a COMMIT, a publish in a batch) faults waited for; Missed
	// those that did not come in time, where the fault acted at once.
	Faults      []string `json:"faults"`
	Targeted    int      `json:"targeted_moments"`
	Missed      int      `json:"missed_moments"`
	FaultErrors []string `json:"fault_errors,omitempty"`
	// Redeliveries are deliveries the broker flagged redelivered;
	// Duplicates are redeliveries absorbed by the inboxes (inbox_duplicates).
	Redeliveries int64      `json:"redeliveries"`
	Duplicates   int64      `json:"duplicates_absorbed"`
	Wire         wireCounts `json:"wire"`
	// Invariant failures by kind.
	Lost          int `json:"lost"`
	DoubleApplied int `json:"double_applied"`
	Stuck         int `json:"stuck"`
	WrongOutcome  int `json:"wrong_outcome"`
	Inconsistent  int `json:"inconsistent"`
	DeadLetters   int `json:"unexpected_dead_letters"`
	Unsent        int `json:"unsent"`
	NotAccepted   int `json:"not_accepted"`
	// ExpectedDeadLetters are the poison messages found dead-lettered.
	ExpectedDeadLetters int `json:"expected_dead_letters"`
	// Raced counts orders that ended by the payment timeout because a fault
	// delayed the payment's answer past it (allowed; proved by the timeline).
	Raced         int            `json:"raced"`
	Outcomes      map[string]int `json:"outcomes"`
	Crashes       []crash        `json:"crashes,omitempty"`
	ClientRetries int64          `json:"client_retries"`
	ServerErrors  int64          `json:"server_errors"`
	DrainTime     time.Duration  `json:"-"`
	Duration      time.Duration  `json:"-"`
	DrainSeconds  float64        `json:"drain_seconds"`
	Seconds       float64        `json:"seconds"`
	DrainError    string         `json:"drain_error,omitempty"`
	Violations    []Violation    `json:"violations,omitempty"`
	Error         string         `json:"error,omitempty"`
	Logs          string         `json:"logs,omitempty"`
}

// Passed reports whether the scenario ran and every invariant held. A
// process that exited on its own (and was restarted) also fails it: a
// service must ride out broker and database outages.
func (r Result) Passed() bool {
	return r.Error == "" && len(r.Violations) == 0 && len(r.Crashes) == 0 && r.Orders > 0
}

func (r *Result) fill(l *ledger, w *workload, wire wireCounts, dups int64, crashes []crash) {
	r.Orders = l.Accepted
	r.Violations = l.Violations
	r.Lost = l.count(KindLost)
	r.DoubleApplied = l.count(KindDoubleApplied)
	r.Stuck = l.count(KindStuck)
	r.WrongOutcome = l.count(KindWrongOutcome)
	r.Inconsistent = l.count(KindInconsistent)
	r.DeadLetters = l.count(KindDeadLetter)
	r.Unsent = l.count(KindUnsent)
	r.NotAccepted = l.count(KindNotAccepted)
	r.ExpectedDeadLetters = l.ExpectedDLQ
	r.Raced = l.Raced
	r.Outcomes = l.Outcomes
	r.Wire = wire
	r.Redeliveries = wire.Redeliveries
	r.Duplicates = dups
	r.Crashes = crashes
	r.ClientRetries = w.retries.Load()
	r.ServerErrors = w.errors5.Load()
}

// WriteTable prints the report as a table, then every violation.
func (r *Report) WriteTable(out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "SCENARIO\tSEED\tORDERS\tFAULTS\tMISSED\tREDELIVERIES\tDUPS ABSORBED\tREPUBLISHED\tLOST\tDOUBLE-APPLIED\tSTUCK\tWRONG\tOTHER\tDRAIN\tRESULT\t")
	for _, x := range r.Runs {
		other := x.Inconsistent + x.DeadLetters + x.Unsent + x.NotAccepted + len(x.Crashes)
		result := "ok"
		switch {
		case x.Error != "":
			result = "ERROR"
		case !x.Passed():
			result = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d/%d\t%d\t%d/%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n", x.Scenario, x.Seed, x.Orders, x.Planned,
			len(x.Faults), x.Missed, x.Targeted, x.Redeliveries, x.Duplicates, x.Wire.Republished, x.Lost, x.DoubleApplied, x.Stuck, x.WrongOutcome, other,
			x.DrainTime.Round(100*time.Millisecond), result)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, x := range r.Runs {
		if x.Passed() && len(x.FaultErrors) == 0 {
			continue
		}
		fmt.Fprintf(out, "\n%s:\n", x.Scenario)
		if x.Error != "" {
			fmt.Fprintf(out, "  error: %s\n", x.Error)
		}
		if x.DrainError != "" {
			fmt.Fprintf(out, "  drain: %s\n", x.DrainError)
		}
		for _, e := range x.FaultErrors {
			fmt.Fprintf(out, "  fault error: %s\n", e)
		}
		for _, v := range x.Violations {
			where := v.Service
			if v.Order != "" {
				where += " order " + v.Order
			}
			if v.Path != "" {
				where += " (" + string(v.Path) + ")"
			}
			fmt.Fprintf(out, "  %s: %s: %s\n", v.Kind, where, v.Detail)
		}
		for _, c := range x.Crashes {
			fmt.Fprintf(out, "  crash: %s exited on its own at %s:\n    %s\n", c.Process, c.At, strings.ReplaceAll(c.LogTail, "\n", "\n    "))
		}
		if x.Logs != "" {
			fmt.Fprintf(out, "  process logs: %s\n", x.Logs)
		}
	}
	return nil
}

// WriteFaults prints each scenario's faults and outcomes.
func (r *Report) WriteFaults(out io.Writer) {
	for _, x := range r.Runs {
		fmt.Fprintf(out, "%s (%s):\n", x.Scenario, x.Duration.Round(100*time.Millisecond))
		for _, f := range x.Faults {
			fmt.Fprintf(out, "  - %s\n", f)
		}
		var keys []string
		for k := range x.Outcomes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%d", k, x.Outcomes[k]))
		}
		fmt.Fprintf(out, "  outcomes: %s; raced %d; poison dead-lettered %d; client retries %d; 5xx %d; wire %+v\n",
			strings.Join(parts, " "), x.Raced, x.ExpectedDeadLetters, x.ClientRetries, x.ServerErrors, x.Wire)
	}
}

// WriteJSON prints the report as JSON.
func (r *Report) WriteJSON(out io.Writer) error {
	for i := range r.Runs {
		r.Runs[i].DrainSeconds = r.Runs[i].DrainTime.Seconds()
		r.Runs[i].Seconds = r.Runs[i].Duration.Seconds()
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		*Report
		Passed  bool    `json:"passed"`
		Seconds float64 `json:"seconds"`
	}{r, r.Passed(), r.Duration.Seconds()})
}
