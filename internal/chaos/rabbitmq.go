package chaos

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
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// rabbitScript is where the Debian package installs the server scripts.
const rabbitScript = "/usr/lib/rabbitmq/bin/rabbitmq-server"

// rabbitEPMDPort is the port mapper private nodes share with the local
// platform's node, so that they never register with a system broker's epmd.
const rabbitEPMDPort = "4379"

const rabbitAdmin = "shopmesh_admin"

// rabbitServer is a private RabbitMQ node the harness may kill and start
// again without touching the shared platform's node. It has no plugins, has
// only virtual host "/" and an administrator, and listens on 127.0.0.1.
// It follows tests/testenv's StartRabbitMQ, including the trimmed
// RABBITMQ_HOME that makes a node boot in a few seconds.
type rabbitServer struct {
	home     string
	dir      string
	node     string
	port     int
	distPort int
	password string
	proc     daemon
}

// startRabbitMQ starts a private node in a new temporary directory.
func startRabbitMQ() (*rabbitServer, error) {
	if _, err := os.Stat(rabbitScript); err != nil {
		return nil, fmt.Errorf("RabbitMQ is not installed (%v); run `make up` once to install the platform", err)
	}
	home, err := trimmedRabbitHome()
	if err != nil {
		home = "" // boot from the installed home, only slower
	}
	dir, err := os.MkdirTemp("", "shopmesh-chaos-rabbitmq-")
	if err != nil {
		return nil, err
	}
	s := &rabbitServer{home: home, dir: dir, node: "shopmesh-c" + randomHex(4) + "@localhost", password: randomHex(16)}
	if err := s.writeConfig(); err != nil {
		_ = s.Close()
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		if s.port, err = freePort(); err == nil {
			s.distPort, err = freePort()
		}
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		err = s.start()
		if err == nil {
			return s, nil
		}
		if attempt == 3 || !strings.Contains(err.Error(), "eaddrinuse") {
			_ = s.Close()
			return nil, fmt.Errorf("private RabbitMQ: %w", err)
		}
	}
}

func (s *rabbitServer) writeConfig() error {
	files := map[string]string{
		"enabled_plugins":   "[].\n",
		"rabbitmq-env.conf": "",
		"rabbitmq.conf": fmt.Sprintf(`# chaos: a private throwaway node.
loopback_users = none
default_vhost = /
default_user = %s
default_pass = %s
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
log.console = false
log.file.level = warning
`, rabbitAdmin, s.password),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(content), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return os.MkdirAll(filepath.Join(s.dir, "conf.d"), 0o700)
}

// URL is the administrator's AMQP URL for virtual host "/".
func (s *rabbitServer) URL() string {
	u := url.URL{Scheme: "amqp", User: url.UserPassword(rabbitAdmin, s.password), Host: "127.0.0.1:" + strconv.Itoa(s.port), Path: "/"}
	return u.String()
}

// Addr is the node's AMQP listener.
func (s *rabbitServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *rabbitServer) logPath() string { return filepath.Join(s.dir, "log", s.node+".log") }

func (s *rabbitServer) start() error {
	script := rabbitScript
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + s.dir,
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
		// The script then execs the VM, so the child held here is the VM.
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
	defer out.Close()
	cmd := exec.Command(script)
	cmd.Dir = s.dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	if err := s.proc.start(cmd, nil); err != nil {
		return fmt.Errorf("start %s: %w", script, err)
	}
	exited := s.proc.done()
	err = waitFor(serverStartTimeout, 50*time.Millisecond, func() error {
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
		return fmt.Errorf("node %s not ready on %s: %w\n%s\n%s", s.node, s.Addr(), err,
			tailFile(filepath.Join(s.dir, "stdout.log"), 15), tailFile(s.logPath(), 30))
	}
	return nil
}

// FlushMetadata makes the node write recent metadata changes (queues,
// exchanges, bindings) to disk. RabbitMQ 3.10 keeps metadata in Mnesia,
// whose log is not flushed at once: a kill within seconds of declaring a
// durable queue can make the queue, and the messages routed to it, vanish.
// The harness calls this after declaring the topology, before any kill.
func (s *rabbitServer) FlushMetadata(ctx context.Context) error {
	ctlPort, err := freePort()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(filepath.Dir(rabbitScript), "rabbitmqctl"), "-n", s.node, "eval", "mnesia:sync_log().")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + s.dir,
		"ERL_EPMD_PORT=" + rabbitEPMDPort,
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(s.dir, "rabbitmq-env.conf"),
		"RABBITMQ_CTL_DIST_PORT_MIN=" + strconv.Itoa(ctlPort),
		"RABBITMQ_CTL_DIST_PORT_MAX=" + strconv.Itoa(ctlPort+10),
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		return fmt.Errorf("flush metadata of node %s: %v: %s", s.node, err, out)
	}
	return nil
}

// Kill SIGKILLs the node's VM at once, as a crash would.
func (s *rabbitServer) Kill() { s.proc.kill() }

// Start starts the killed node again on its ports.
func (s *rabbitServer) Start() error { return s.start() }

// Close kills the node and removes its files.
func (s *rabbitServer) Close() error {
	s.proc.kill()
	return os.RemoveAll(s.dir)
}

// trimmedRabbitHome returns a RABBITMQ_HOME with copies of the server
// scripts and links to only the applications the rabbit application depends
// on, built once per RabbitMQ version in the user's cache directory (shared
// with tests/testenv, which builds the same thing).
func trimmedRabbitHome() (string, error) {
	script, err := filepath.EvalSymlinks(rabbitScript)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", rabbitScript, err)
	}
	stock := filepath.Dir(filepath.Dir(script))
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
			return home, nil
		}
		return "", fmt.Errorf("install trimmed home: %w", err)
	}
	return home, nil
}

func buildRabbitHome(stock, dst string) error {
	appsRE := regexp.MustCompile(`\{\s*applications\s*,\s*\[([^\]]*)\]`)
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
	dirs := map[string]string{}
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
		if seen[app] || !ok {
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
