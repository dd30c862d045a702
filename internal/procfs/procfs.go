// Package procfs reads what Linux's /proc says of processes: parent, state,
// CPU time and resident memory. It serves the harnesses that start, stop and
// measure server processes; it must not change any process.
package procfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ClockTick is the kernel's USER_HZ, the unit of /proc CPU times: 100 on
// every Linux architecture Go supports.
const ClockTick = 100

// Stat is what /proc/<pid>/stat says of a process.
type Stat struct {
	PID, PPID int
	// State is R, S, D, Z (zombie), X (dead), T (stopped), ...
	State byte
	// UTime and STime are the process's own CPU time in clock ticks; CUTime
	// and CSTime are those of the children it has waited for.
	UTime, STime, CUTime, CSTime int64
}

// ReadStat reads /proc/<pid>/stat; the error wraps fs.ErrNotExist when
// the process is gone.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return Stat{}, err
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses, so
	// the fields are counted from its closing parenthesis.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	st := Stat{PID: pid, State: f[0][0]}
	var nums [5]int64
	for k, field := range []int{1, 11, 12, 13, 14} { // ppid, utime, stime, cutime, cstime
		if nums[k], err = strconv.ParseInt(f[field], 10, 64); err != nil {
			return Stat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
	}
	st.PPID = int(nums[0])
	st.UTime, st.STime, st.CUTime, st.CSTime = nums[1], nums[2], nums[3], nums[4]
	return st, nil
}

// Alive reports whether the process runs: zombies and dying ones do not.
func (s Stat) Alive() bool { return s.State != 'Z' && s.State != 'X' }

// CPU is the process's own CPU time.
func (s Stat) CPU() time.Duration { return ticks(s.UTime + s.STime) }

// ChildrenCPU is the CPU time of the children the process has waited for.
func (s Stat) ChildrenCPU() time.Duration { return ticks(s.CUTime + s.CSTime) }

func ticks(n int64) time.Duration { return time.Duration(n) * time.Second / ClockTick }

// All reads the stat of every process; one that exits while being read is
// left out.
func All() []Stat {
	entries, _ := os.ReadDir("/proc")
	out := make([]Stat, 0, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := ReadStat(pid); err == nil {
			out = append(out, st)
		}
	}
	return out
}

// Comm is the process's command name, "" when it is gone.
func Comm(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// RSS returns the process's resident set in bytes (VmRSS).
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "12345 kB"
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
}

// Machine is the machine's cumulative CPU time from the first line of
// /proc/stat, in clock ticks summed over its CPUs: all of it (busy, idle
// and waiting) and what the hypervisor ran elsewhere while this machine's
// CPUs wanted to run (steal). A host that oversubscribes its cores takes
// steal from every process here, and the figures of a benchmark with it.
type Machine struct {
	Total, Steal int64
}

// ReadMachine reads the machine's cumulative CPU time.
func ReadMachine() (Machine, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return Machine{}, err
	}
	return parseMachine(string(b))
}

// parseMachine reads the "cpu" line of /proc/stat: user, nice, system,
// idle, iowait, irq, softirq, steal, then guest and guest_nice, which user
// and nice already include.
func parseMachine(s string) (Machine, error) {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return Machine{}, fmt.Errorf("/proc/stat: first line %q is not the cpu total", line)
	}
	var m Machine
	for i, field := range f[1:9] {
		n, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			return Machine{}, fmt.Errorf("/proc/stat: cpu field %d: %w", i+1, err)
		}
		m.Total += n
		if i == 7 {
			m.Steal = n
		}
	}
	return m, nil
}

// StealShare is the share of the machine's CPU time the hypervisor took
// from earlier to m, 0 to 1 (0 when no time passed).
func (m Machine) StealShare(earlier Machine) float64 {
	total := m.Total - earlier.Total
	if total <= 0 {
		return 0
	}
	return float64(m.Steal-earlier.Steal) / float64(total)
}
