package localserver

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
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

// RabbitMQOptions configures a private node. The zero value is ready to use.
type RabbitMQOptions struct {
	// NodePrefix begins the Erlang node name, <prefix><8 hex digits>@localhost;
	// "shopmesh-" when empty.
	NodePrefix string
	// LogLevel is the level of the node's log file; "info" when empty.
	LogLevel string
	// StartTimeout bounds each start until the node accepts AMQP
	// connections; a minute when zero.
	StartTimeout time.Duration
	// Logger hears why a node boots from the installed RabbitMQ home, more
	// slowly, instead of the trimmed one; nil discards that.
	Logger *slog.Logger
	// Schedulers is how many Erlang schedulers the node runs (+S N:N);
	// DefaultRabbitSchedulers when zero.
	Schedulers int
}

// DefaultRabbitSchedulers is the Erlang schedulers of a node that shares
// the machine with the databases and services it serves: half the CPUs,
// at least one. The runtime starts one scheduler per CPU, and on a
// two-core machine shared with PostgreSQL and the services the node then
// spent a fifth to a third more CPU per message than with one scheduler,
// its schedulers waking one another for each message (README,
// Performance). deploy/local/platform.sh makes the same choice.
func DefaultRabbitSchedulers() int {
	return max(1, runtime.NumCPU()/2)
}

// RabbitMQ is a private RabbitMQ node. It has no plugins (no management
// API), listens for AMQP and Erlang distribution on free ports on 127.0.0.1
// only, has only virtual host "/", and only an administrator user: guest is
// never created.
type RabbitMQ struct {
	home         string // RABBITMQ_HOME the node boots from; "" for the installed one
	dir          string // everything the node owns
	node         string
	port         int
	distPort     int
	password     string
	startTimeout time.Duration
	schedulers   int
	proc         Process
}

// StartRabbitMQ starts a node keeping its files in dir (created when
// missing) and waits until it accepts AMQP connections. On error nothing is
// left running and dir is removed; otherwise Close does that.
//
// A node boots in about four seconds, most of it the Erlang VM loading
// code. To keep it that short the node runs from a trimmed RABBITMQ_HOME
// holding only the applications a node without plugins loads (RabbitMQ scans
// every module it can see at boot), built once per RabbitMQ version in the
// user's cache directory; it falls back to the installed home.
func StartRabbitMQ(ctx context.Context, dir string, opts RabbitMQOptions) (*RabbitMQ, error) {
	if opts.Schedulers < 0 {
		return nil, fmt.Errorf("private RabbitMQ: %d schedulers", opts.Schedulers)
	}
	if _, err := os.Stat(rabbitScript); err != nil {
		return nil, fmt.Errorf("RabbitMQ %w (%v)", ErrNotInstalled, err)
	}
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	home, err := trimmedRabbitHome()
	if err != nil {
		if opts.Logger != nil {
			opts.Logger.Warn("booting from the installed RabbitMQ home", "err", err)
		}
		home = ""
	}
	s := &RabbitMQ{
		schedulers:   cmp.Or(opts.Schedulers, DefaultRabbitSchedulers()),
		home:         home,
		dir:          dir,
		node:         cmp.Or(opts.NodePrefix, "shopmesh-") + randomHex(4) + "@localhost",
		password:     randomHex(16),
		startTimeout: cmp.Or(opts.StartTimeout, defaultStartTimeout),
	}
	if err := s.setUp(ctx, cmp.Or(opts.LogLevel, "info")); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("private RabbitMQ: %w", err)
	}
	return s, nil
}

// setUp writes the node's configuration and starts it on free ports, trying
// others when a chosen one was taken before it was bound.
func (s *RabbitMQ) setUp(ctx context.Context, logLevel string) error {
	if err := s.writeConfig(logLevel); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		var err error
		if s.port, err = FreePort(); err != nil {
			return err
		}
		if s.distPort, err = FreePort(); err != nil {
			return err
		}
		err = s.Start(ctx)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "eaddrinuse") {
			return err
		}
	}
}

func (s *RabbitMQ) writeConfig(logLevel string) error {
	files := map[string]string{
		"enabled_plugins":   "[].\n",
		"rabbitmq-env.conf": "", // shadows /etc/rabbitmq/rabbitmq-env.conf
		"rabbitmq.conf": fmt.Sprintf(`# localserver: a private throwaway node.
loopback_users = none
default_vhost = /
default_user = %s
default_pass = %s
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
log.console = false
log.file.level = %s
`, rabbitAdmin, s.password, logLevel),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(content), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return os.MkdirAll(filepath.Join(s.dir, "conf.d"), 0o700)
}

// URL returns the administrator's AMQP URL for virtual host "/".
func (s *RabbitMQ) URL() string {
	u := url.URL{Scheme: "amqp", User: url.UserPassword(rabbitAdmin, s.password), Host: s.Addr(), Path: "/"}
	return u.String()
}

// Addr returns the node's AMQP listen address, 127.0.0.1:<port>.
func (s *RabbitMQ) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Node returns the Erlang node name, e.g. for log messages.
func (s *RabbitMQ) Node() string { return s.node }

func (s *RabbitMQ) logPath() string { return filepath.Join(s.dir, "log", s.node+".log") }

// Start starts the stopped or killed node on its ports and waits until it
// accepts AMQP connections.
func (s *RabbitMQ) Start(ctx context.Context) error {
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
		// it from a shell, so the child held, signalled and reaped here is
		// the VM itself, and its process group holds this node's processes
		// only; -noinput then turns input off again.
		"RABBITMQ_ALLOW_INPUT=true",
		fmt.Sprintf("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-noinput -kernel inet_dist_use_interface {127,0,0,1} +S %d:%d", s.schedulers, s.schedulers),
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
	if err := s.proc.Start(cmd, nil); err != nil {
		return fmt.Errorf("start %s: %w", script, err)
	}
	err = waitReady(ctx, &s.proc, s.startTimeout, func(context.Context) error {
		conn, err := amqp.DialConfig(s.URL(), amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
		if err != nil {
			return err
		}
		return conn.Close()
	})
	if err != nil {
		s.proc.Kill()
		return fmt.Errorf("node %s not ready on %s: %w\n%s\n%s", s.node, s.Addr(), err,
			TailFile(filepath.Join(s.dir, "stdout.log"), 15), TailFile(s.logPath(), 30))
	}
	return nil
}

// Stop shuts the node down gracefully (SIGTERM) and waits for it to exit. It
// returns an error when the node had to be killed after a minute.
func (s *RabbitMQ) Stop() error { return s.proc.Stop(syscall.SIGTERM, stopTimeout) }

// Kill SIGKILLs the node's Erlang VM and its port programs at once, as a
// crash would, and waits until they are gone. No other node is touched.
func (s *RabbitMQ) Kill() { s.proc.Kill() }

// KillNow SIGKILLs the node's VM and its port programs without waiting, to
// crash the node at an exact moment; Kill then waits until they are gone.
func (s *RabbitMQ) KillNow() { s.proc.KillNow() }

// Running reports whether the node's VM runs.
func (s *RabbitMQ) Running() bool { return s.proc.Running() }

// FlushMetadata makes the node write its recent metadata changes (declared
// or deleted queues, exchanges and bindings, users, permissions) to disk.
//
// RabbitMQ 3.10 keeps metadata in Mnesia, whose transaction log is not
// flushed at once: a Kill within seconds of declaring a durable queue can
// make the queue vanish after the restart, and the messages routed to it
// with it (measured: about one kill in ten, most often soon after a boot).
// Messages confirmed to an existing durable queue do survive a Kill. Whoever
// kills the node right after declaring topology calls this in between. It
// takes about a second: it runs rabbitmqctl.
func (s *RabbitMQ) FlushMetadata(ctx context.Context) error {
	out, err := s.eval(ctx, "mnesia:sync_log().")
	if err != nil || out != "ok" {
		return fmt.Errorf("flush metadata of node %s: %v: %s", s.node, err, out)
	}
	return nil
}

// eval runs expr on the node with rabbitmqctl and returns what it printed.
func (s *RabbitMQ) eval(ctx context.Context, expr string) (string, error) {
	ctlPort, err := FreePort()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(filepath.Dir(rabbitScript), "rabbitmqctl"),
		"-n", s.node, "eval", expr)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + s.dir, // the node's Erlang cookie
		"ERL_EPMD_PORT=" + rabbitEPMDPort,
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(s.dir, "rabbitmq-env.conf"),
		"RABBITMQ_CTL_DIST_PORT_MIN=" + strconv.Itoa(ctlPort),
		"RABBITMQ_CTL_DIST_PORT_MAX=" + strconv.Itoa(ctlPort+10),
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Close kills the node and removes its directory.
func (s *RabbitMQ) Close() error {
	s.proc.Kill() // a graceful stop would only take longer
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove %s: %w", s.dir, err)
	}
	return nil
}
