package localserver

import (
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// FreePort returns a loopback TCP port that nothing listens on, for a server
// to be started on it.
//
// It is chosen below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range): a port of that range, free when
// asked, can be taken a moment later as the source port of any outgoing
// connection (every database and broker client of every test running beside
// this one), and the server then fails with "address already in use".
//
// Between FreePort and the server's listen the port is free, so another
// process asking at that moment would be handed it too. Every port handed
// out is therefore reserved machine-wide for the life of this process: an
// exclusive lock on a file named after it in PortLockDir, which the kernel
// releases when the process ends, however it ends. No port is handed out
// twice while its holder lives, by this process or any other using FreePort.
func FreePort() (int, error) {
	low := ephemeralLow()
	freePorts.mu.Lock()
	defer freePorts.mu.Unlock()
	for range 500 {
		port := freePortMin + mrand.IntN(low-freePortMin)
		if _, mine := freePorts.held[port]; mine {
			continue
		}
		lock, err := reservePort(port)
		if err != nil {
			return 0, err
		}
		if lock == nil {
			continue // held by another process
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			lock.Close()
			continue // in use by something that does not reserve
		}
		l.Close()
		freePorts.held[port] = lock
		return port, nil
	}
	return 0, fmt.Errorf("find a free port: none free between %d and %d after 500 tries", freePortMin, low)
}

// PortLockDir holds the lock files of the ports FreePort has handed out.
// It is shared by every process of every user on the machine that uses
// FreePort with the same temporary directory.
func PortLockDir() string { return filepath.Join(os.TempDir(), "shopmesh-ports") }

// reservePort takes the lock of port without waiting: the open lock file
// when taken, nil when another process holds it.
func reservePort(port int) (*os.File, error) {
	dir := PortLockDir()
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, fmt.Errorf("port locks: %w", err)
	}
	_ = os.Chmod(dir, 0o1777) // any user's processes share it; best effort
	path := filepath.Join(dir, strconv.Itoa(port))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if errors.Is(err, os.ErrPermission) {
		return nil, nil // another user's lock file that we may not open: treat as taken
	}
	if err != nil {
		return nil, fmt.Errorf("port lock %s: %w", path, err)
	}
	_ = f.Chmod(0o666)
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("port lock %s: %w", path, err)
	}
	return f, nil
}

// freePortMin is the lowest port FreePort hands out, above the well-known
// and the project's own fixed ports.
const freePortMin = 20000

// freePorts holds the lock of every port this process has handed out; the
// locks are never released before the process ends.
var freePorts = struct {
	mu   sync.Mutex
	held map[int]*os.File
}{held: map[int]*os.File{}}

// ephemeralLow is the first port of the kernel's ephemeral range (32768
// when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		var low, high int
		if _, err := fmt.Sscan(string(b), &low, &high); err == nil && low > freePortMin+1000 {
			return low
		}
	}
	return 32768
}
