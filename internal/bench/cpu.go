package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/internal/procfs"
	"github.com/shopmesh/shopmesh/internal/rabbitmgmt"
)

// CPU accounting of the orders scenario: how much processor time one
// checkout costs, split by who spends it. It moves much less than
// throughput with what else the machine runs, so it is the figure to compare
// across runs, and it says how many checkouts per second the machine could
// carry if nothing else ran (cores / CPU per checkout).

// Names of the parts of the system outside the shopmesh processes.
const (
	cpuPostgres  = "PostgreSQL"
	cpuRabbitMQ  = "RabbitMQ"
	cpuGenerator = "load generator"
)

// cpuMeter reads cumulative CPU time of the system's processes and of the
// PostgreSQL and RabbitMQ servers, when they run on this machine.
type cpuMeter struct {
	pids       map[string]int // shopmesh process name -> pid
	postmaster int            // 0 when PostgreSQL is not local
	beam       int            // 0 when RabbitMQ is not local
}

// newCPUMeter finds the servers' processes: the postmaster is the parent of
// the backend serving a connection to postgresURL, RabbitMQ's node reports
// its OS pid through the management API. A server that is not a process
// of this machine is left out, and said so in the returned notes.
func newCPUMeter(ctx context.Context, pids map[string]int, postgresURL, managementURL string) (*cpuMeter, []string) {
	m := &cpuMeter{pids: pids}
	var notes []string
	if pid, err := postmasterPID(ctx, postgresURL); err != nil {
		notes = append(notes, fmt.Sprintf("PostgreSQL's CPU is not counted: %v", err))
	} else {
		m.postmaster = pid
	}
	if pid, err := rabbitPID(ctx, managementURL); err != nil {
		notes = append(notes, fmt.Sprintf("RabbitMQ's CPU is not counted: %v", err))
	} else {
		m.beam = pid
	}
	return m, notes
}

func postmasterPID(ctx context.Context, url string) (int, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var backend int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		return 0, err
	}
	st, err := procfs.ReadStat(backend)
	if err != nil {
		return 0, fmt.Errorf("the server is not a process of this machine (%w)", err)
	}
	if !strings.HasPrefix(procfs.Comm(st.PPID), "postgres") {
		return 0, fmt.Errorf("backend %d's parent %d is not a postmaster", backend, st.PPID)
	}
	return st.PPID, nil
}

func rabbitPID(ctx context.Context, managementURL string) (int, error) {
	mgmt, err := rabbitmgmt.New(managementURL)
	if err != nil {
		return 0, err
	}
	return mgmt.LocalNodePID(ctx)
}

// eventMeter reports the CPU one event cost PostgreSQL, RabbitMQ and this
// process, for the scenarios whose writers, relay and consumers run here.
type eventMeter struct {
	*cpuMeter
	self string // what this process runs, as the figures name it
}

// newEventMeter finds the servers' processes; a server it cannot read is
// left out, and said so in the scenario's notes.
func (r *runner) newEventMeter(ctx context.Context, scenario, self string) *eventMeter {
	m, notes := newCPUMeter(ctx, nil, r.cfg.PostgresURL, r.cfg.ManagementURL)
	for _, n := range notes {
		r.results.note(scenario, n)
	}
	return &eventMeter{cpuMeter: m, self: self}
}

// record reports what each part used, per event.
func (m *eventMeter) record(r *runner, scenario, variant string, round int, used map[string]time.Duration, events int) {
	names := map[string]string{cpuPostgres: cpuPostgres, cpuRabbitMQ: cpuRabbitMQ, cpuGenerator: m.self}
	for _, part := range []string{cpuPostgres, cpuRabbitMQ, cpuGenerator} {
		if d, ok := used[part]; ok {
			r.record(scenario, variant, "CPU per event: "+names[part], "us", round, float64(d.Microseconds())/float64(events))
		}
	}
}

// cpuSample is cumulative CPU time per part at one moment, and the
// machine's (machineOK false where /proc/stat cannot be read).
type cpuSample struct {
	at        time.Time
	used      map[string]time.Duration
	machine   procfs.Machine
	machineOK bool
}

// sample reads every part's cumulative CPU time. A shopmesh process that
// cannot be read (it exited) is an error: its time would be lost.
func (m *cpuMeter) sample() (cpuSample, error) {
	s := cpuSample{at: time.Now(), used: map[string]time.Duration{}}
	for name, pid := range m.pids {
		st, err := procfs.ReadStat(pid)
		if err != nil {
			return s, fmt.Errorf("CPU time of %s: %w", name, err)
		}
		s.used[name] = st.CPU()
	}
	if m.postmaster != 0 {
		d, err := treeCPU(m.postmaster)
		if err != nil {
			return s, fmt.Errorf("CPU time of PostgreSQL: %w", err)
		}
		s.used[cpuPostgres] = d
	}
	if m.beam != 0 {
		st, err := procfs.ReadStat(m.beam)
		if err != nil {
			return s, fmt.Errorf("CPU time of RabbitMQ: %w", err)
		}
		s.used[cpuRabbitMQ] = st.CPU()
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return s, fmt.Errorf("CPU time of the load generator: %w", err)
	}
	s.used[cpuGenerator] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	machine, err := procfs.ReadMachine()
	s.machine, s.machineOK = machine, err == nil
	return s, nil
}

// since returns the CPU each part used from earlier to s, less what it
// would have used idle over the same time (idle: CPU per second at rest,
// relays polling and brokers ticking), never below zero.
func (s cpuSample) since(earlier cpuSample, idle map[string]float64) map[string]time.Duration {
	out, _ := s.sinceIdle(earlier, idle)
	return out
}

// belowIdleSlack is how far a part's use may fall short of its idle rate
// before sinceIdle names it: at least this, and a tenth of what the idle
// rate accounts for. /proc counts in 10 ms ticks, and a part that does
// nothing in a phase (the user service) uses its idle rate give or take
// a few of them; that jitter is no news.
const belowIdleSlack = 50 * time.Millisecond

// sinceIdle is since, and also names, sorted, the parts that used clearly
// less than the idle rate accounts for over the time: their zero is no
// measurement, only a sign that the idle rate was taken at a busier
// moment than the phase (under heavy steal a part can do less work per
// second during a phase than at rest).
func (s cpuSample) sinceIdle(earlier cpuSample, idle map[string]float64) (map[string]time.Duration, []string) {
	wall := s.at.Sub(earlier.at).Seconds()
	out := map[string]time.Duration{}
	var below []string
	for name, v := range s.used {
		allowance := time.Duration(idle[name] * wall)
		d := v - earlier.used[name] - allowance
		if -d > max(belowIdleSlack, allowance/10) {
			below = append(below, name)
		}
		out[name] = max(d, 0)
	}
	slices.Sort(below)
	return out, below
}

// stealPercent is the share of the machine's CPU time the host took from
// earlier to s, in percent; ok is false where it could not be read.
func (s cpuSample) stealPercent(earlier cpuSample) (percent float64, ok bool) {
	if !s.machineOK || !earlier.machineOK {
		return 0, false
	}
	return 100 * s.machine.StealShare(earlier.machine), true
}

// perSecond is each part's CPU per second of wall time from earlier to s.
func (s cpuSample) perSecond(earlier cpuSample) map[string]float64 {
	wall := s.at.Sub(earlier.at).Seconds()
	out := map[string]float64{}
	for name, v := range s.used {
		out[name] = float64(v-earlier.used[name]) / wall
	}
	return out
}

// treeCPU is the CPU time of a server and its children: its own, what its
// exited children used (reaped), and what its live children used so far.
// A child that exits between two samples moves from the last to the second
// term, so the sum stays continuous.
func treeCPU(parent int) (time.Duration, error) {
	st, err := procfs.ReadStat(parent)
	if err != nil {
		return 0, err
	}
	total := st.CPU() + st.ChildrenCPU()
	for _, c := range procfs.All() {
		if c.PPID == parent {
			total += c.CPU()
		}
	}
	return total, nil
}
