package localserver

import (
	"net"
	"strconv"
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
