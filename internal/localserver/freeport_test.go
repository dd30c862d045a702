package localserver

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Ports come from below the kernel's ephemeral range, so no outgoing
// connection can take one between FreePort and the server's listen, and no
// port is handed out twice.
func TestFreePortAvoidsTheEphemeralRangeAndRepeats(t *testing.T) {
	low := ephemeralLow()
	seen := map[int]bool{}
	for range 50 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if p < freePortMin || p >= low {
			t.Fatalf("port %d outside [%d, %d)", p, freePortMin, low)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		l.Close()
	}
}

// A port handed out by one process is not handed out by another while the
// first lives, even though nothing listens on it yet, and is free to take
// once the first process has ended.
func TestFreePortIsReservedAcrossProcesses(t *testing.T) {
	if os.Getenv("SHOPMESH_TEST_HOLD_PORT") != "" {
		holdPortChild()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFreePortIsReservedAcrossProcesses$")
	cmd.Env = append(os.Environ(), "SHOPMESH_TEST_HOLD_PORT=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	port, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "port "))
	if err != nil {
		t.Fatalf("child said %q", line)
	}

	lock, err := reservePort(port)
	if err != nil {
		t.Fatal(err)
	}
	if lock != nil {
		t.Fatalf("port %d, handed out to a living process, was reservable here", port)
	}
	for range 200 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if p == port {
			t.Fatalf("FreePort handed out port %d, held by another process", port)
		}
	}

	stdin.Close() // the child exits
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if lock, err = reservePort(port); err != nil || lock == nil {
		t.Fatalf("port %d not reservable after its holder ended: %v", port, err)
	}
	lock.Close()
}

// holdPortChild takes a port, says which, and holds it until stdin closes.
func holdPortChild() {
	p, err := FreePort()
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Printf("port %d\n", p)
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}
