package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopmesh/shopmesh/internal/rabbitmgmt"
)

// CPU accounting of the orders scenario: how much processor time one
// checkout costs, split by who spends it. Unlike throughput it hardly
// depends on what else the machine runs, so it is the figure to compare
// across runs, and it says how many checkouts per second the machine could
// carry if nothing else ran (cores / CPU per checkout).

// Names of the parts of the system outside the shopmesh processes.
const (
	cpuPostgres  = "PostgreSQL"
	cpuRabbitMQ  = "RabbitMQ"
	cpuGenerator = "load generator"
)

// clockTick is the kernel's USER_HZ, the unit of /proc CPU times: 100 on
// every Linux architecture Go supports.
const clockTick = 100

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
	st, err := readStat(backend)
	if err != nil {
		return 0, fmt.Errorf("the server is not a process of this machine (%w)", err)
	}
	if !strings.HasPrefix(processName(st.ppid), "postgres") {
		return 0, fmt.Errorf("backend %d's parent %d is not a postmaster", backend, st.ppid)
	}
	return st.ppid, nil
}

func rabbitPID(ctx context.Context, managementURL string) (int, error) {
	mgmt, err := rabbitmgmt.New(managementURL)
	if err != nil {
		return 0, err
	}
	var nodes []struct {
		OSPid string `json:"os_pid"`
	}
	if err := mgmt.Do(ctx, "GET", "/api/nodes", nil, &nodes); err != nil {
		return 0, err
	}
	if len(nodes) != 1 {
		return 0, fmt.Errorf("%d nodes in the cluster, want 1", len(nodes))
	}
	pid, err := strconv.Atoi(nodes[0].OSPid)
	if err != nil {
		return 0, fmt.Errorf("os pid %q: %w", nodes[0].OSPid, err)
	}
	if name := processName(pid); !strings.HasPrefix(name, "beam") {
		return 0, fmt.Errorf("the node's pid %d is not a process of this machine", pid)
	}
	return pid, nil
}

// cpuSample is cumulative CPU time per part at one moment.
type cpuSample struct {
	at   time.Time
	used map[string]time.Duration
}

// sample reads every part's cumulative CPU time. A shopmesh process that
// cannot be read (it exited) is an error: its time would be lost.
func (m *cpuMeter) sample() (cpuSample, error) {
	s := cpuSample{at: time.Now(), used: map[string]time.Duration{}}
	for name, pid := range m.pids {
		st, err := readStat(pid)
		if err != nil {
			return s, fmt.Errorf("CPU time of %s: %w", name, err)
		}
		s.used[name] = st.own()
	}
	if m.postmaster != 0 {
		d, err := treeCPU(m.postmaster)
		if err != nil {
			return s, fmt.Errorf("CPU time of PostgreSQL: %w", err)
		}
		s.used[cpuPostgres] = d
	}
	if m.beam != 0 {
		st, err := readStat(m.beam)
		if err != nil {
			return s, fmt.Errorf("CPU time of RabbitMQ: %w", err)
		}
		s.used[cpuRabbitMQ] = st.own()
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return s, fmt.Errorf("CPU time of the load generator: %w", err)
	}
	s.used[cpuGenerator] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return s, nil
}

// since returns the CPU each part used from earlier to s, less what it
// would have used idle over the same time (idle: CPU per second at rest,
// relays polling and brokers ticking), never below zero.
func (s cpuSample) since(earlier cpuSample, idle map[string]float64) map[string]time.Duration {
	wall := s.at.Sub(earlier.at).Seconds()
	out := map[string]time.Duration{}
	for name, v := range s.used {
		d := v - earlier.used[name] - time.Duration(idle[name]*wall)
		out[name] = max(d, 0)
	}
	return out
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

// procStat is what CPU accounting reads from /proc/<pid>/stat.
type procStat struct {
	ppid                         int
	utime, stime, cutime, cstime int64 // clock ticks
}

// own is the process's CPU time; children's is the time of children it has
// waited for (the postmaster reaps every backend).
func (p procStat) own() time.Duration {
	return ticks(p.utime + p.stime)
}

func (p procStat) children() time.Duration { return ticks(p.cutime + p.cstime) }

func ticks(n int64) time.Duration { return time.Duration(n) * time.Second / clockTick }

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	// The command name (field 2) may hold spaces and parentheses; the
	// fields after its closing parenthesis start with the state (field 3).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var p procStat
	var nums [5]int64
	for k, field := range []int{1, 11, 12, 13, 14} { // ppid, utime, stime, cutime, cstime
		if nums[k], err = strconv.ParseInt(f[field], 10, 64); err != nil {
			return procStat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
	}
	p.ppid = int(nums[0])
	p.utime, p.stime, p.cutime, p.cstime = nums[1], nums[2], nums[3], nums[4]
	return p, nil
}

func processName(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// treeCPU is the CPU time of a server and its children: its own, what its
// exited children used (reaped), and what its live children used so far.
// A child that exits between two samples moves from the last to the second
// term, so the sum stays continuous.
func treeCPU(parent int) (time.Duration, error) {
	st, err := readStat(parent)
	if err != nil {
		return 0, err
	}
	total := st.own() + st.children()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == parent {
			continue
		}
		c, err := readStat(pid)
		if err != nil || c.ppid != parent {
			continue // gone, or not a child
		}
		total += c.own()
	}
	return total, nil
}
