package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopmesh/shopmesh/internal/apiclient"
	"github.com/shopmesh/shopmesh/internal/localserver"
	"github.com/shopmesh/shopmesh/internal/sysrun"
	"github.com/shopmesh/shopmesh/internal/wait"
)

// system is the whole of shopmesh running for one group of scenarios: the
// infrastructure, a proxy per service per dependency, one OS process per
// service and one for the gateway.
type system struct {
	cfg      Config
	logger   *slog.Logger
	runID    string
	dir      string
	infra    *sysrun.Infra
	proxies  *proxySet
	procs    *processes
	services []string
	dbURLs   map[string]string // service -> direct administrator URL
	pools    map[string]*pgxpool.Pool
	env      map[string]string
	gateway  string
	httpc    *http.Client
	admin    *client

	stopSupervisor context.CancelFunc
	supervisorDone chan struct{}

	mu       sync.Mutex
	replicas int
	brokerMu sync.Mutex // serialises broker and database restarts
}

// startSystem brings a system up: infrastructure, databases, proxies,
// migrations, processes, an administrator. On error it has cleaned up.
func startSystem(ctx context.Context, cfg Config, private bool, runID string) (s *system, err error) {
	s = &system{cfg: cfg, logger: cfg.Logger.With("run", runID), runID: runID, services: cfg.Services,
		dbURLs: map[string]string{}, pools: map[string]*pgxpool.Pool{}, env: map[string]string{},
		httpc: &http.Client{Timeout: 10 * time.Second}}
	if s.dir, err = os.MkdirTemp("", "shopmesh-chaos-"+runID+"-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.close(context.WithoutCancel(ctx), false)
			s = nil
		}
	}()
	began := time.Now()
	if private {
		s.infra, err = newPrivateInfra(ctx, s.logger)
	} else {
		s.infra, err = sysrun.NewShared(ctx, cfg.platform, "chaos_"+runID)
	}
	if err != nil {
		return s, err
	}
	s.logger.Info("infrastructure ready", "private", private, "took", time.Since(began).Round(time.Millisecond))
	s.proxies = newProxySet()
	for _, svc := range s.services {
		name := svc
		if !private {
			name = "chaos_" + runID + "_" + svc
		}
		if s.dbURLs[svc], err = s.infra.CreateDatabase(ctx, name); err != nil {
			return s, err
		}
		if err = s.proxies.add(svc, hostOf(s.infra.PGAdmin), hostOf(s.infra.AMQPAdmin)); err != nil {
			return s, err
		}
		if s.pools[svc], err = pgxpool.New(ctx, s.dbURLs[svc]); err != nil {
			return s, err
		}
	}
	if err = s.buildEnv(); err != nil {
		return s, err
	}
	// Migrations and topology go straight to the servers, not through the
	// proxies.
	direct := map[string]string{}
	for _, svc := range s.services {
		direct["SHOPMESH_"+strings.ToUpper(svc)+"_DATABASE_URL"] = s.dbURLs[svc]
	}
	if err = sysrun.Migrate(ctx, s.cfg.Binary, s.processEnv(direct), s.services); err != nil {
		return s, err
	}
	if s.infra.Rabbit != nil {
		if err = s.infra.Rabbit.FlushMetadata(ctx); err != nil {
			return s, err
		}
	}
	s.procs = newProcesses(s.dir, cfg.Binary, s.logger)
	for _, svc := range s.services {
		s.procs.add(svc, svc, hostOf("http://"+s.env["SHOPMESH_"+strings.ToUpper(svc)+"_HTTP_ADDR"]), s.processEnv(nil))
	}
	s.procs.add("gateway", "gateway", s.env["SHOPMESH_GATEWAY_ADDR"], s.processEnv(nil))
	for _, p := range s.procs.list() {
		if err = p.start(); err != nil {
			return s, err
		}
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopSupervisor, s.supervisorDone = cancel, make(chan struct{})
	go func() { defer close(s.supervisorDone); s.procs.supervise(sctx) }()
	if err = s.procs.waitReady(ctx, 3*time.Minute); err != nil {
		return s, err
	}
	if err = s.createAdmin(ctx); err != nil {
		return s, err
	}
	s.logger.Info("system ready", "services", len(s.services), "took", time.Since(began).Round(time.Millisecond))
	return s, nil
}

func (s *system) buildEnv() error {
	port := func() (string, error) {
		p, err := localserver.FreePort()
		return fmt.Sprintf("127.0.0.1:%d", p), err
	}
	s.env = map[string]string{
		"SHOPMESH_AMQP_URL":                s.infra.AMQPAdmin,
		"SHOPMESH_POSTGRES_URL":            s.infra.PGAdmin,
		"SHOPMESH_JWT_SECRET":              "chaos-" + randomHex(24),
		"SHOPMESH_LOG_LEVEL":               "info",
		"SHOPMESH_ORDER_PAYMENT_TIMEOUT":   s.cfg.PaymentTimeout.String(),
		"SHOPMESH_SHIPPING_DISPATCH_DELAY": s.cfg.DispatchDelay.String(),
		"SHOPMESH_SHIPPING_DELIVERY_DELAY": "300ms",
		"SHOPMESH_INVENTORY_AUTO_RESTOCK":  "false",
		"SHOPMESH_GATEWAY_RATE_LIMIT":      "100000",
		"SHOPMESH_GATEWAY_RATE_BURST":      "100000",
		"SHOPMESH_GATEWAY_REQUEST_TIMEOUT": "5s",
	}
	for _, svc := range s.services {
		up := strings.ToUpper(svc)
		addr, err := port()
		if err != nil {
			return err
		}
		s.env["SHOPMESH_"+up+"_DATABASE_URL"] = withHost(s.dbURLs[svc], s.proxies.pg[svc].Addr())
		s.env["SHOPMESH_"+up+"_AMQP_URL"] = withHost(s.infra.AMQPAdmin, s.proxies.amqp[svc].Addr())
		s.env["SHOPMESH_"+up+"_HTTP_ADDR"] = addr
		s.env["SHOPMESH_"+up+"_URL"] = "http://" + addr
	}
	gw, err := port()
	if err != nil {
		return err
	}
	s.env["SHOPMESH_GATEWAY_ADDR"] = gw
	s.gateway = "http://" + gw
	return nil
}

// processEnv is the system's environment plus extra (see sysrun.Environ).
func (s *system) processEnv(extra map[string]string) []string { return sysrun.Environ(s.env, extra) }

func (s *system) createAdmin(ctx context.Context) error {
	email := "admin." + s.runID + "@chaos.example.com"
	password := "chaos admin password"
	direct := map[string]string{"SHOPMESH_USER_DATABASE_URL": s.dbURLs["user"]}
	if err := sysrun.CreateAdmin(ctx, s.cfg.Binary, s.processEnv(direct), email, password); err != nil {
		return err
	}
	s.admin = s.newClient(new(workload))
	token, err := s.admin.login(ctx, email, password)
	if err != nil {
		return fmt.Errorf("admin login: %w", err)
	}
	s.admin.api.Token = token
	return nil
}

func (s *system) newClient(w *workload) *client {
	return &client{api: apiclient.New(s.gateway, s.httpc), retries: &w.retries, errors5: &w.errors5}
}

// has reports whether a service runs in this system.
func (s *system) has(svc string) bool {
	for _, x := range s.services {
		if x == svc {
			return true
		}
	}
	return false
}

// restart kills a process (SIGKILL) if it still runs, starts it again and
// waits until it is ready.
func (s *system) restart(ctx context.Context, p *process) error {
	p.kill()
	if err := p.start(); err != nil {
		return err
	}
	return s.waitProcess(ctx, p)
}

// waitProcess waits, at most 90 s, until p runs and answers ready.
func (s *system) waitProcess(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var last error
	err := wait.Poll(ctx, 100*time.Millisecond, p.name+" ready", func(ctx context.Context) (bool, error) {
		last = fmt.Errorf("%s is not running", p.name)
		if p.running() {
			last = p.ready(ctx, s.procs.client)
		}
		return last == nil, nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("%w (last: %v)", err, last)
	}
	return err
}

// startReplica starts another process of a service on its own HTTP port.
func (s *system) startReplica(ctx context.Context, svc string) (*process, error) {
	addr, err := localserver.FreePort()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.replicas++
	name := fmt.Sprintf("%s#%d", svc, s.replicas+1)
	s.mu.Unlock()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", addr)
	p := s.procs.add(name, svc, httpAddr, s.processEnv(map[string]string{"SHOPMESH_" + strings.ToUpper(svc) + "_HTTP_ADDR": httpAddr}))
	if err := p.start(); err != nil {
		s.procs.remove(name)
		return nil, err
	}
	return p, s.waitProcess(ctx, p)
}

// stopReplicas ends every replica started by startReplica.
func (s *system) stopReplicas() {
	for _, p := range s.procs.list() {
		if strings.Contains(p.name, "#") {
			_ = p.stop()
			s.procs.remove(p.name)
		}
	}
}

// killBroker SIGKILLs the private RabbitMQ node; startBroker starts it again.
func (s *system) killBroker() error {
	if s.infra.Rabbit == nil {
		return errors.New("the shared RabbitMQ is never killed: this scenario needs a private node")
	}
	s.infra.Rabbit.Kill()
	return nil
}

func (s *system) startBroker(ctx context.Context) error {
	if s.infra.Rabbit == nil || s.infra.Rabbit.Running() {
		return nil
	}
	return s.infra.Rabbit.Start(ctx)
}

func (s *system) killPostgres() error {
	if s.infra.PG == nil {
		return errors.New("the shared PostgreSQL is never killed: this scenario needs a private cluster")
	}
	s.infra.PG.Kill()
	return nil
}

func (s *system) startPostgres(ctx context.Context) error {
	if s.infra.PG == nil || s.infra.PG.Running() {
		return nil
	}
	return s.infra.PG.Start(ctx)
}

// heal ends every fault: proxies clean, servers up, processes resumed and
// running, replicas stopped; then waits until everything is ready.
func (s *system) heal(ctx context.Context) error {
	s.proxies.heal(ctx)
	s.brokerMu.Lock()
	err := errors.Join(s.startBroker(context.WithoutCancel(ctx)), s.startPostgres(context.WithoutCancel(ctx)))
	s.brokerMu.Unlock()
	if err != nil {
		return err
	}
	s.stopReplicas()
	if err := s.procs.heal(); err != nil {
		return err
	}
	return s.procs.waitReady(ctx, 2*time.Minute)
}

// close stops everything the system started. keepLogs keeps the process
// logs (the caller reports where).
func (s *system) close(ctx context.Context, keepLogs bool) {
	if s.stopSupervisor != nil {
		s.stopSupervisor()
		<-s.supervisorDone
	}
	if s.procs != nil {
		s.procs.stopAll()
	}
	for _, p := range s.pools {
		p.Close()
	}
	if s.proxies != nil {
		s.proxies.close()
	}
	if s.infra != nil {
		if err := s.infra.Close(ctx); err != nil {
			s.logger.Warn("cleanup", "err", err)
		}
	}
	if !keepLogs && s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}
