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
