package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// rabbitScript is where the Debian package installs the server scripts.
const rabbitScript = "/usr/lib/rabbitmq/bin/rabbitmq-server"

// rabbitEPMDPort is the port mapper the local platform's node uses; private
// nodes share it (the first node to need it starts it) so that they never
// register with a system broker's epmd on 4369.
const rabbitEPMDPort = "4379"

// rabbitAdmin is the administrator of private nodes.
const rabbitAdmin = "shopmesh_admin"

// RabbitMQServer is a private RabbitMQ node for one test, which the test may
// stop, kill and start again. It has no plugins (no management API), listens
// for AMQP on a free port on 127.0.0.1, has only virtual host "/", and only
// an administrator user: guest is never created.
type RabbitMQServer struct {
	t        testing.TB
	home     string // RABBITMQ_HOME the node boots from
	dir      string // everything the node owns; removed at cleanup
	node     string
	port     int
	distPort int
	password string
	proc     daemon
}

// StartRabbitMQ starts a private node and waits until it accepts AMQP
// connections. When the test ends the node is killed and its files removed.
//
// A node boots in about four seconds here, most of it the Erlang VM loading
// code. To keep it that short the node runs from a trimmed RABBITMQ_HOME
// holding only the applications a node without plugins loads (RabbitMQ scans
// every module it can see at boot), built once per RabbitMQ version in the
// user's cache directory; it falls back to the installed home.
func StartRabbitMQ(t testing.TB) *RabbitMQServer {
	t.Helper()
	if _, err := os.Stat(rabbitScript); err != nil {
		t.Fatalf("testenv: RabbitMQ is not installed (%v); %s", err, startHint)
	}
	home, err := trimmedRabbitHome()
	if err != nil {
		t.Logf("testenv: booting from the installed RabbitMQ home: %v", err)
		home = ""
	}
	dir, err := os.MkdirTemp("", "shopmesh-rabbitmq-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	s := &RabbitMQServer{
		t:        t,
		home:     home,
		dir:      dir,
		node:     "shopmesh-t" + randomHex(4) + "@localhost",
		password: randomHex(16),
	}
	t.Cleanup(func() {
		s.proc.kill() // a graceful stop would only slow the test down
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testenv: remove %s: %v", dir, err)
		}
	})
	if err := s.writeConfig(); err != nil {
		t.Fatalf("testenv: private RabbitMQ: %v", err)
	}
	// Free ports can be taken between choosing and binding them: try again.
	for attempt := 1; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		if s.distPort, err = freePort(); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		err = s.start()
		if err == nil {
			return s
		}
		if attempt == 3 || !strings.Contains(err.Error(), "eaddrinuse") {
			t.Fatalf("testenv: private RabbitMQ: %v", err)
		}
	}
}

func (s *RabbitMQServer) writeConfig() error {
	files := map[string]string{
		"enabled_plugins":   "[].\n",
		"rabbitmq-env.conf": "", // shadows /etc/rabbitmq/rabbitmq-env.conf
		"rabbitmq.conf": fmt.Sprintf(`# testenv: a private throwaway node.
loopback_users = none
default_vhost = /
default_user = %s
default_pass = %s
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
log.console = false
log.file.level = info
`, rabbitAdmin, s.password),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(content), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return os.MkdirAll(filepath.Join(s.dir, "conf.d"), 0o700)
}

// URL returns the administrator's AMQP URL for virtual host "/".
func (s *RabbitMQServer) URL() string {
	u := url.URL{
		Scheme: "amqp",
		User:   url.UserPassword(rabbitAdmin, s.password),
		Host:   "127.0.0.1:" + strconv.Itoa(s.port),
		Path:   "/",
	}
	return u.String()
}

// Node returns the Erlang node name, e.g. for log messages.
func (s *RabbitMQServer) Node() string { return s.node }

// Start starts the stopped or killed node on its ports and waits until it
// accepts AMQP connections. It fails the test when it does not within a
// minute.
func (s *RabbitMQServer) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("testenv: private RabbitMQ: %v", err)
	}
}

func (s *RabbitMQServer) logPath() string { return filepath.Join(s.dir, "log", s.node+".log") }

func (s *RabbitMQServer) start() error {
	script := rabbitScript
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + s.dir, // the Erlang cookie lives here
		"ERL_EPMD_PORT=" + rabbitEPMDPort,
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"RABBITMQ_NODENAME=" + s.node,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=" + strconv.Itoa(s.port),
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(s.distPort),
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(s.dir, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(s.dir, "log"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(s.dir, "enabled_plugins"),
		"RABBITMQ_CONFIG_FILE=" + filepath.Join(s.dir, "rabbitmq.conf"),
		"RABBITMQ_CONFIG_FILES=" + filepath.Join(s.dir, "conf.d"),
		"RABBITMQ_ADVANCED_CONFIG_FILE=" + filepath.Join(s.dir, "advanced.config"),
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(s.dir, "rabbitmq-env.conf"),
		// With input allowed the script execs the VM instead of supervising
		// it from a shell, so the child we hold, signal and reap is the VM
		// itself; -noinput then turns input off again.
		"RABBITMQ_ALLOW_INPUT=true",
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-noinput -kernel inet_dist_use_interface {127,0,0,1}",
	}
	if s.home != "" {
		script = filepath.Join(s.home, "sbin", "rabbitmq-server")
		env = append(env, "RABBITMQ_PLUGINS_DIR="+filepath.Join(s.home, "plugins"))
	}
	for _, k := range []string{"LANG", "LC_ALL"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	out, err := os.OpenFile(filepath.Join(s.dir, "stdout.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("open stdout log: %w", err)
	}
	defer out.Close() // the child holds its own descriptor
	cmd := exec.Command(script)
	cmd.Dir = s.dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	if err := s.proc.start(cmd, nil); err != nil {
		return fmt.Errorf("start %s: %w", script, err)
	}
	exited := s.proc.running()
	err = waitFor(startTimeout, 50*time.Millisecond, func() error {
		select {
		case <-exited:
			return errExited
		default:
		}
		conn, err := amqp.DialConfig(s.URL(), amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
		if err != nil {
			return err
		}
		return conn.Close()
	})
	if err != nil {
		s.proc.kill()
		return fmt.Errorf("node %s not ready on 127.0.0.1:%d: %w\n%s\n%s", s.node, s.port, err,
			tail(filepath.Join(s.dir, "stdout.log"), 15), tail(s.logPath(), 30))
	}
	return nil
}

// Stop shuts the node down gracefully (SIGTERM) and waits for it to exit.
func (s *RabbitMQServer) Stop() {
	s.t.Helper()
	if err := s.proc.stop(syscall.SIGTERM, stopTimeout); err != nil {
		s.t.Errorf("testenv: stop private RabbitMQ: %v", err)
	}
}

// FlushMetadata makes the node write its recent metadata changes (declared
// or deleted queues, exchanges and bindings, users, permissions) to disk.
//
// RabbitMQ 3.10 keeps metadata in Mnesia, whose transaction log is not
// flushed at once: a Kill within seconds of declaring a durable queue can
// make the queue vanish after the restart, and the messages routed to it
// with it (measured here: about one kill in ten, most often soon after a
// boot). Messages confirmed to an existing durable queue do survive a Kill.
// A test that kills the node right after declaring topology calls this in
// between. It takes about a second: it runs rabbitmqctl.
func (s *RabbitMQServer) FlushMetadata() {
	s.t.Helper()
	ctlPort, err := freePort()
	if err != nil {
		s.t.Fatalf("testenv: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(filepath.Dir(rabbitScript), "rabbitmqctl"),
		"-n", s.node, "eval", "mnesia:sync_log().")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + s.dir, // the node's Erlang cookie
		"ERL_EPMD_PORT=" + rabbitEPMDPort,
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(s.dir, "rabbitmq-env.conf"),
		"RABBITMQ_CTL_DIST_PORT_MIN=" + strconv.Itoa(ctlPort),
		"RABBITMQ_CTL_DIST_PORT_MAX=" + strconv.Itoa(ctlPort+10),
	}
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		s.t.Fatalf("testenv: flush metadata of node %s: %v: %s", s.node, err, out)
	}
}

// Kill SIGKILLs the node's Erlang VM (and its process group) at once, as a
// crash would, and waits for it to be gone. No other node is touched.
func (s *RabbitMQServer) Kill() {
	s.t.Helper()
	s.proc.kill()
}

// trimmedRabbitHome returns a RABBITMQ_HOME with copies of the installed
// server scripts and links to only the applications the rabbit application
// depends on, building it on first use.
func trimmedRabbitHome() (string, error) {
	script, err := filepath.EvalSymlinks(rabbitScript)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", rabbitScript, err)
	}
	stock := filepath.Dir(filepath.Dir(script)) // .../rabbitmq_server-<version>
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		cacheRoot = os.TempDir()
	}
	home := filepath.Join(cacheRoot, "shopmesh", "rabbitmq-home", filepath.Base(stock))
	done := filepath.Join(home, ".complete")
	if _, err := os.Stat(done); err == nil {
		return home, nil
	}
	if err := os.MkdirAll(filepath.Dir(home), 0o755); err != nil {
		return "", fmt.Errorf("create cache directory: %w", err)
	}
	// Build beside the final place and rename, so concurrent test binaries
	// never see a half-built home.
	tmp, err := os.MkdirTemp(filepath.Dir(home), ".build-")
	if err != nil {
		return "", fmt.Errorf("create build directory: %w", err)
	}
	if err := buildRabbitHome(stock, tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("mark home complete: %w", err)
	}
	if err := os.Rename(tmp, home); err != nil {
		_ = os.RemoveAll(tmp)
		if _, statErr := os.Stat(done); statErr == nil {
			return home, nil // another test binary won the race
		}
		return "", fmt.Errorf("install trimmed home: %w", err)
	}
	return home, nil
}

func buildRabbitHome(stock, dst string) error {
	appsRE := regexp.MustCompile(`\{\s*applications\s*,\s*\[([^\]]*)\]`) // an .app file's dependencies
	// The scripts locate RABBITMQ_HOME from their own resolved path, so they
	// are copied, not linked.
	if err := os.MkdirAll(filepath.Join(dst, "sbin"), 0o755); err != nil {
		return err
	}
	scripts, err := os.ReadDir(filepath.Join(stock, "sbin"))
	if err != nil {
		return fmt.Errorf("list scripts: %w", err)
	}
	for _, e := range scripts {
		if err := copyFile(filepath.Join(stock, "sbin", e.Name()), filepath.Join(dst, "sbin", e.Name()), 0o755); err != nil {
			return err
		}
	}
	if err := os.Symlink(filepath.Join(stock, "escript"), filepath.Join(dst, "escript")); err != nil {
		return fmt.Errorf("link escript: %w", err)
	}
	entries, err := os.ReadDir(filepath.Join(stock, "plugins"))
	if err != nil {
		return fmt.Errorf("list plugins: %w", err)
	}
	dirs := map[string]string{} // application name -> directory name
	for _, e := range entries {
		if i := strings.LastIndex(e.Name(), "-"); e.IsDir() && i > 0 {
			dirs[e.Name()[:i]] = e.Name()
		}
	}
	if err := os.MkdirAll(filepath.Join(dst, "plugins"), 0o755); err != nil {
		return err
	}
	seen := map[string]bool{}
	queue := []string{"rabbit", "rabbitmq_prelaunch"}
	for len(queue) > 0 {
		app := queue[0]
		queue = queue[1:]
		d, ok := dirs[app]
		if seen[app] || !ok { // not a plugin directory: part of Erlang/OTP
			continue
		}
		seen[app] = true
		if err := os.Symlink(filepath.Join(stock, "plugins", d), filepath.Join(dst, "plugins", d)); err != nil {
			return fmt.Errorf("link %s: %w", d, err)
		}
		spec, err := os.ReadFile(filepath.Join(stock, "plugins", d, "ebin", app+".app"))
		if err != nil {
			return fmt.Errorf("read %s.app: %w", app, err)
		}
		m := appsRE.FindSubmatch(spec)
		if m == nil {
			return fmt.Errorf("no applications list in %s.app", app)
		}
		for _, dep := range strings.Split(string(m[1]), ",") {
			if dep = strings.TrimSpace(dep); dep != "" {
				queue = append(queue, dep)
			}
		}
	}
	if !seen["rabbit"] || !seen["rabbit_common"] {
		return errors.New("rabbit applications not found among the installed plugins")
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}
