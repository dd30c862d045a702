package procfs

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"testing"
)

func TestReadStatOfThisProcessAndAChild(t *testing.T) {
	self, err := ReadStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if self.PID != os.Getpid() || self.PPID != os.Getppid() || !self.Alive() {
		t.Errorf("own stat = %+v, want pid %d, parent %d, alive", self, os.Getpid(), os.Getppid())
	}
	if rss, err := RSS(os.Getpid()); err != nil || rss <= 0 {
		t.Errorf("own RSS = %d, %v; want positive", rss, err)
	}

	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	found := false
	for _, st := range All() {
		if st.PID == child.Process.Pid {
			found = st.PPID == os.Getpid() && st.Alive()
		}
	}
	if !found {
		t.Errorf("All does not list child %d as a live child of %d", child.Process.Pid, os.Getpid())
	}
	if got := Comm(child.Process.Pid); got != "sleep" {
		t.Errorf("Comm = %q, want sleep", got)
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	if _, err := ReadStat(child.Process.Pid); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat of a reaped process: %v, want fs.ErrNotExist", err)
	}
}

func TestMachineCountsStealOnceAndLeavesGuestOut(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	before, err := parseMachine("cpu  100 0 50 800 10 0 5 35 7 0\ncpu0 50 0 25 400 5 0 2 18 0 0\n")
	if err != nil {
		t.Fatal(err)
	}
	if before.Total != 1000 || before.Steal != 35 {
		t.Errorf("machine = %+v, want total 1000 (guest left out) and steal 35", before)
	}
	after, err := parseMachine("cpu  200 0 100 1365 10 0 10 115 9 0\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := after.StealShare(before); got != 0.1 {
		t.Errorf("steal share = %v, want 80 of 800 ticks = 0.1", got)
	}
	if got := before.StealShare(before); got != 0 {
		t.Errorf("steal share over no time = %v, want 0", got)
	}
	for _, bad := range []string{"", "intr 1 2 3\n", "cpu 1 2 3\n", "cpu 1 2 3 4 5 6 7 x 9\n"} {
		if _, err := parseMachine(bad); err == nil {
			t.Errorf("parseMachine(%q) = nil error, want one", bad)
		}
	}
	if _, err := ReadMachine(); err != nil {
		t.Errorf("ReadMachine on this machine: %v", err)
	}
}
