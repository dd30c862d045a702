package sysrun

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// BuildBinary builds ./cmd/shopmesh of the module rooted at root into dir
// and returns the binary's path.
func BuildBinary(ctx context.Context, root, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	bin := filepath.Join(dir, "shopmesh")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/shopmesh")
	cmd.Dir = root
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/shopmesh: %w\n%s", err, out)
	}
	return bin, nil
}

// DiscoverServices asks the binary which targets it can serve and returns
// them without the gateway.
func DiscoverServices(ctx context.Context, binary string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, binary, "serve", "sysrun-no-such-target").CombinedOutput()
	m := regexp.MustCompile(`available: all, ([a-z0-9_, ]+)\)`).FindSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("cannot tell which services %s serves: %s", binary, strings.TrimSpace(string(out)))
	}
	var svcs []string
	for _, s := range strings.Split(string(m[1]), ",") {
		if s = strings.TrimSpace(s); s != "" && s != "gateway" {
			svcs = append(svcs, s)
		}
	}
	return svcs, nil
}

// Environ is the inherited environment without any SHOPMESH_ variable (the
// shared platform's must not leak in) but SHOPMESH_PPROF_ADDR (so that the
// processes of a bench or test system can be profiled), plus vars, then
// extra (which wins).
func Environ(vars, extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHOPMESH_") || strings.HasPrefix(kv, "SHOPMESH_PPROF_ADDR=") {
			env = append(env, kv)
		}
	}
	for k, v := range vars {
		if _, over := extra[k]; !over {
			env = append(env, k+"="+v)
		}
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// Command runs the binary with args and env to its end (at most three
// minutes) and returns what it wrote.
func Command(ctx context.Context, binary string, env []string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd.CombinedOutput()
}

// Migrate runs `migrate --skip-provision` for services: the vhost and the
// databases exist already.
func Migrate(ctx context.Context, binary string, env []string, services []string) error {
	if out, err := Command(ctx, binary, env, append([]string{"migrate", "--skip-provision"}, services...)...); err != nil {
		return fmt.Errorf("shopmesh migrate: %w\n%s", err, out)
	}
	return nil
}

// CreateAdmin runs `user create-admin`; env must reach the user database.
func CreateAdmin(ctx context.Context, binary string, env []string, email, password string) error {
	if out, err := Command(ctx, binary, env, "user", "create-admin", "--email", email, "--password", password); err != nil {
		return fmt.Errorf("user create-admin: %w\n%s", err, out)
	}
	return nil
}

// Ready asks a process at addr once whether it is ready: /readyz, or for
// the gateway /healthz (its /readyz asks every upstream).
func Ready(ctx context.Context, client *http.Client, addr string, gateway bool) error {
	path := "/readyz"
	if gateway {
		path = "/healthz"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return nil
}
