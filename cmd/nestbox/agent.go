package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"nestbox.dev/internal/agent"
	"nestbox.dev/internal/egress"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/metrics"
)

// runAgent is `nestbox agent`: it serves the host agent until ctx is done.
// Sandboxes keep running when it stops; the next start adopts them.
func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	aa, err := parseAgentArgs(args, stderr)
	if err != nil {
		return err
	}
	cfg, listen, logLevel, tokenFile := aa.cfg, aa.listen, aa.logLevel, aa.tokenFile
	joinToken := os.Getenv("NESTBOX_JOIN_TOKEN")
	// Read once; no child (runsc, mount, mkfs) may inherit them.
	os.Unsetenv("NESTBOX_AGENT_TOKEN")
	os.Unsetenv("NESTBOX_EVENTS_TOKEN")
	os.Unsetenv("NESTBOX_JOIN_TOKEN")
	if aa.join.controlPlane != "" {
		if err := joinFleet(ctx, &cfg, aa.join, joinToken, listen, tokenFile, stderr); err != nil {
			return err
		}
	}
	if cfg.Token == "" {
		tok, created, err := agent.TokenFile(tokenFile)
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintf(stderr, "made the agent token %s: copy it to the control plane's machine (mode 0600) and start `nestbox server --agent-token-file <copy>`\n", tokenFile)
		}
		cfg.Token = tok
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
	cfg.Progress = stderr
	cfg.Metrics = metrics.NewRegistry()
	a, err := agent.New(ctx, cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	cfg.Logger.Info("agent listening", "addr", ln.Addr().String(), "data_dir", cfg.DataDir)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	if err := serveMetrics(ctx, &wg, aa.metricsListen, cfg.Metrics, cfg.Logger); err != nil {
		ln.Close()
		return err
	}
	wg.Go(func() {
		a.Run(ctx)
		a.DrainPools(context.WithoutCancel(ctx))
	})
	err = a.Serve(ctx, ln)
	cancel()
	return err
}

// joinFleet makes the agent a host of the fleet of j.controlPlane: on
// the first start it registers with the join token (which writes the
// issued agent token to tokenFile), later starts read the membership the
// first one kept. It sets cfg's events and heartbeat to the control plane.
func joinFleet(ctx context.Context, cfg *agent.Config, j joinFlags, joinToken, listen, tokenFile string, stderr io.Writer) error {
	if cfg.Token != "" || cfg.EventsURL != "" || cfg.EventsToken != "" || cfg.HostID != "" {
		return errors.New("--control-plane issues the agent's token and host ID and receives its events: drop NESTBOX_AGENT_TOKEN, --events-url, the events token and --host-id")
	}
	advertise := j.advertise
	if advertise == "" {
		host, _, err := net.SplitHostPort(listen)
		if ip := net.ParseIP(host); err != nil || host == "" || (ip != nil && ip.IsUnspecified()) {
			return fmt.Errorf("--advertise-url is required when --listen (%s) names no address control planes can dial", listen)
		}
		scheme := "http"
		if cfg.TLSCertFile != "" {
			scheme = "https"
		}
		advertise = scheme + "://" + listen
	}
	m, err := agent.ReadMembership(cfg.DataDir)
	switch {
	case err == nil && m.ControlPlane != strings.TrimRight(j.controlPlane, "/"):
		return fmt.Errorf("this host joined %s, not %s: remove %s/fleet.json (and its sandboxes) to join another", m.ControlPlane, j.controlPlane, cfg.DataDir)
	case errors.Is(err, errdefs.ErrNotFound):
		if joinToken == "" && j.joinTokenFile != "" {
			if joinToken, err = agent.ReadTokenFile(j.joinTokenFile); err != nil {
				return fmt.Errorf("--join-token-file: %w", err)
			}
		}
		if joinToken == "" {
			return errors.New("this host has not joined yet: give a join token from `nestbox host token create` with --join-token-file (or env NESTBOX_JOIN_TOKEN)")
		}
		name := j.name
		if name == "" {
			name, _ = os.Hostname()
		}
		if m, err = agent.Join(ctx, j.controlPlane, joinToken, advertise, name, cfg.DataDir, tokenFile); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "joined the fleet of %s as host %s\n", m.ControlPlane, m.HostID)
	case err != nil:
		return err
	}
	cfg.HostID = m.HostID
	cfg.EventsURL = m.ControlPlane + "/v1/hosts/sandbox-events"
	cfg.Heartbeat = agent.Heartbeat{URL: m.ControlPlane + "/v1/hosts/heartbeat", AdvertiseURL: advertise}
	return nil
}

// parseAgentFlags reads the agent's flags; each defaults to an environment
// variable, then to a built-in value. Secrets never come from argv (any
// local user sees it in ps): the agent token is read from env
// NESTBOX_AGENT_TOKEN or, when that is unset, from tokenFile (made on first
// use); the events token from NESTBOX_EVENTS_TOKEN or --events-token-file,
// else agent.New derives it from the agent token.
func parseAgentFlags(args []string, stderr io.Writer) (cfg agent.Config, listen string, logLevel slog.Level, tokenFile string, err error) {
	a, err := parseAgentArgs(args, stderr)
	return a.cfg, a.listen, a.logLevel, a.tokenFile, err
}

// agentArgs are `nestbox agent`'s parsed flags.
type agentArgs struct {
	cfg       agent.Config
	listen    string
	logLevel  slog.Level
	tokenFile string
	join      joinFlags
	// metricsListen serves the agent's metrics without authentication;
	// "" serves them only on listen, behind the agent token.
	metricsListen string
}

// joinFlags make the agent a host of a fleet.
type joinFlags struct {
	controlPlane, joinTokenFile, advertise, name string
}

// parseAgentArgs is parseAgentFlags with the fleet's flags.
func parseAgentArgs(args []string, stderr io.Writer) (a agentArgs, err error) {
	fs := flag.NewFlagSet("nestbox agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var dataDir, eventsTokenFile, refused, tlsCert, tlsKey string
	fs.StringVar(&dataDir, "data-dir", env("NESTBOX_DATA_DIR", "/var/lib/nestbox"), "state directory: sandboxes, templates, runtime state (env NESTBOX_DATA_DIR)")
	fs.StringVar(&a.listen, "listen", env("NESTBOX_AGENT_LISTEN", "127.0.0.1:5007"), "address of the agent's API and sandbox proxy (env NESTBOX_AGENT_LISTEN)")
	af := registerAgentFlags(fs)
	fs.StringVar(&af.eventsURL, "events-url", env("NESTBOX_EVENTS_URL", ""), "URL to POST sandbox events to, e.g. http://cp:8080/v1/hosts/sandbox-events; empty sends none (env NESTBOX_EVENTS_URL)")
	fs.StringVar(&eventsTokenFile, "events-token-file", env("NESTBOX_EVENTS_TOKEN_FILE", ""), "file holding the bearer token sent with events, a copy of the control plane's <data-dir>/host-token (env NESTBOX_EVENTS_TOKEN_FILE; or the token itself in env NESTBOX_EVENTS_TOKEN); default: a token derived from the agent token, which the control plane derives from its copy of it")
	fs.StringVar(&refused, "events-token", "", "refused: a token on the command line is visible to every local user; use --events-token-file or env NESTBOX_EVENTS_TOKEN")
	fs.StringVar(&tlsCert, "tls-cert", env("NESTBOX_AGENT_TLS_CERT", ""), "PEM certificate: serve HTTPS, so the token and the traffic are encrypted across machines (env NESTBOX_AGENT_TLS_CERT; give the server its CA with --agent-ca)")
	fs.StringVar(&tlsKey, "tls-key", env("NESTBOX_AGENT_TLS_KEY", ""), "PEM key of --tls-cert (env NESTBOX_AGENT_TLS_KEY)")
	fs.StringVar(&a.tokenFile, "token-file", env("NESTBOX_AGENT_TOKEN_FILE", ""), "file holding the token every caller of this agent must present, made on first use (env NESTBOX_AGENT_TOKEN_FILE; default <data-dir>/agent-token; or the token itself in env NESTBOX_AGENT_TOKEN)")
	fs.StringVar(&af.hostID, "host-id", env("NESTBOX_HOST_ID", ""), "this host's ID in events (env NESTBOX_HOST_ID)")
	fs.StringVar(&a.join.controlPlane, "control-plane", env("NESTBOX_CONTROL_PLANE", ""), "join the fleet of the control plane at this URL, e.g. https://cp.example.com (env NESTBOX_CONTROL_PLANE); the first start registers with --join-token-file, later ones heartbeat as the same host")
	fs.StringVar(&a.join.joinTokenFile, "join-token-file", env("NESTBOX_JOIN_TOKEN_FILE", ""), "file holding a join token from `nestbox host token create` (env NESTBOX_JOIN_TOKEN_FILE; or the token itself in env NESTBOX_JOIN_TOKEN); needed only to join")
	fs.StringVar(&a.join.advertise, "advertise-url", env("NESTBOX_ADVERTISE_URL", ""), "where control planes reach this agent, e.g. https://10.0.0.5:5007 (env NESTBOX_ADVERTISE_URL; default: http(s)://<--listen>)")
	fs.StringVar(&a.join.name, "host-name", env("NESTBOX_HOST_NAME", ""), "this host's name in `nestbox host ls` (env NESTBOX_HOST_NAME; default: the hostname)")
	fs.TextVar(&a.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	metricsFlag(fs, &a.metricsListen)
	if err = fs.Parse(args); err != nil {
		return a, err
	}
	if fs.NArg() > 0 {
		return a, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if refused != "" {
		return a, errors.New("--events-token is refused: a token on the command line is visible to every local user; put it in a file (mode 0600) and pass --events-token-file, or set env NESTBOX_EVENTS_TOKEN")
	}
	af.eventsToken = os.Getenv("NESTBOX_EVENTS_TOKEN")
	if af.eventsToken == "" && eventsTokenFile != "" {
		if af.eventsToken, err = agent.ReadTokenFile(eventsTokenFile); err != nil {
			return a, fmt.Errorf("--events-token-file: %w", err)
		}
	}
	a.cfg, err = af.config(dataDir)
	if err != nil {
		return a, err
	}
	a.cfg.TLSCertFile, a.cfg.TLSKeyFile = tlsCert, tlsKey
	if a.tokenFile == "" {
		a.tokenFile = filepath.Join(a.cfg.DataDir, "agent-token")
	}
	if tok := os.Getenv("NESTBOX_AGENT_TOKEN"); tok != "" {
		if err := agent.CheckToken(tok); err != nil {
			return a, fmt.Errorf("NESTBOX_AGENT_TOKEN: %w", err)
		}
		a.cfg.Token = tok
	}
	return a, nil
}

// agentFlags are the host agent's settings shared by `nestbox agent` and
// `nestbox up`.
type agentFlags struct {
	runsc, envd, templateDir, templateCache, networkCIDR, networkPrefix, cgroupParent string
	size, rate, burst, egressDeny                                                     string
	memReserve, diskReserve                                                           string
	memOvercommit, diskOvercommit                                                     float64
	pidsLimit, maxSandboxes, maxSnapshots                                             int
	eventsURL, eventsToken, hostID                                                    string
	pauseMemoryGrace                                                                  string
	pools                                                                             string
	poolMemoryMB                                                                      int
	// exeDir is the directory of the running nestbox, searched for runsc.
	exeDir string
	// runscDataDir is the data directory searched for bin/runsc; "" means
	// the directory config is given.
	runscDataDir string
}

func registerAgentFlags(fs *flag.FlagSet) *agentFlags {
	var f agentFlags
	if exe, err := os.Executable(); err == nil {
		f.exeDir = filepath.Dir(exe)
	}
	fs.StringVar(&f.runsc, "runsc", env("NESTBOX_RUNSC", ""), "static runsc binary (env NESTBOX_RUNSC; default: the first runsc next to nestbox, in <data-dir>/bin, or on PATH)")
	fs.StringVar(&f.envd, "envd", env("NESTBOX_ENVD", besides(f.exeDir, "envd")), "static envd binary put into templates (env NESTBOX_ENVD; default: envd next to nestbox)")
	fs.StringVar(&f.templateDir, "template-dir", env("NESTBOX_TEMPLATE_DIR", ""), "where templates are kept (env NESTBOX_TEMPLATE_DIR; default <data-dir>/templates)")
	fs.StringVar(&f.templateCache, "template-cache-dir", env("NESTBOX_TEMPLATE_CACHE_DIR", ""), "where downloaded packages are kept between template builds (env NESTBOX_TEMPLATE_CACHE_DIR; default <template-dir>/.cache)")
	fs.StringVar(&f.networkCIDR, "network-cidr", env("NESTBOX_NETWORK_CIDR", ""), "private range for sandbox addresses (env NESTBOX_NETWORK_CIDR; default 10.200.0.0/16)")
	fs.StringVar(&f.networkPrefix, "network-prefix", env("NESTBOX_NETWORK_PREFIX", ""), "prefix of this agent's netns, link and nft names; two agents on one host need different ones (env NESTBOX_NETWORK_PREFIX; default nbx)")
	fs.StringVar(&f.cgroupParent, "cgroup-parent", env("NESTBOX_CGROUP_PARENT", ""), "cgroup under which each sandbox gets its own (env NESTBOX_CGROUP_PARENT; default /nestbox)")
	fs.StringVar(&f.size, "default-rootfs-size", env("NESTBOX_DEFAULT_ROOTFS_SIZE", "5Gi"), "writable-layer size of sandboxes that ask for none, e.g. 5Gi (env NESTBOX_DEFAULT_ROOTFS_SIZE)")
	fs.StringVar(&f.rate, "egress-rate", env("NESTBOX_EGRESS_RATE", "200Mi"), "what each sandbox may send, in bytes per second, e.g. 200Mi; 0 for no limit (env NESTBOX_EGRESS_RATE)")
	fs.StringVar(&f.burst, "egress-burst", env("NESTBOX_EGRESS_BURST", "100Mi"), "burst above the egress rate, in bytes (env NESTBOX_EGRESS_BURST)")
	fs.StringVar(&f.egressDeny, "egress-deny", env("NESTBOX_EGRESS_DENY", "default"), "destinations no sandbox may reach whatever its allow list says: comma-separated IPv4 addresses and prefixes, \"default\" for the built-in list (metadata, private, shared and reserved ranges), \"\" for none; the sandbox pool and the host's own addresses are always denied (env NESTBOX_EGRESS_DENY)")
	fs.StringVar(&f.memReserve, "memory-reserve", env("NESTBOX_MEMORY_RESERVE", ""), "host memory never given to sandboxes, e.g. 2Gi; \"none\" for none (env NESTBOX_MEMORY_RESERVE; default max(1Gi, 10%))")
	fs.StringVar(&f.diskReserve, "disk-reserve", env("NESTBOX_DISK_RESERVE", ""), "free space kept on the data dir's file system, e.g. 10Gi; \"none\" for none (env NESTBOX_DISK_RESERVE; default max(2Gi, 5%))")
	fs.IntVar(&f.pidsLimit, "pids-limit", 0, "host pids limit of each sandbox, gVisor's own threads included (default 1024)")
	fs.Float64Var(&f.memOvercommit, "memory-overcommit", 0, "how far the sandboxes' memory limits together may exceed the host's memory less the reserve (default 16; 1 for none)")
	fs.Float64Var(&f.diskOvercommit, "disk-overcommit", 0, "how far the writable layers' sizes together may exceed the free disk above the reserve (default 16; 1 for none)")
	fs.IntVar(&f.maxSandboxes, "max-sandboxes", 0, "most sandboxes this host runs (default: as many as memory and disk allow)")
	fs.IntVar(&f.maxSnapshots, "max-snapshots", 0, "most snapshots this host keeps (default 64; -1 for no maximum)")
	fs.StringVar(&f.pools, "pool", env("NESTBOX_POOLS", ""), "warm pools: comma-separated TEMPLATE=SIZE (sandboxes of the default size) or TEMPLATE=SIZE:VCPUS:MEMORY_MB, e.g. base=2; a create that a pool serves starts in milliseconds (env NESTBOX_POOLS; default none)")
	fs.IntVar(&f.poolMemoryMB, "pool-memory-mb", 0, "most memory, in MiB of sandbox limits, that all pooled sandboxes hold together (default 8192; -1 for no cap but the host's)")
	fs.StringVar(&f.pauseMemoryGrace, "pause-memory-grace", env("NESTBOX_PAUSE_MEMORY_GRACE", ""), "how long a paused sandbox stays frozen in memory (a resume then takes milliseconds) before it is written to disk, e.g. 30s; \"0\" writes every pause to disk at once (env NESTBOX_PAUSE_MEMORY_GRACE; default 30s)")
	return &f
}

// parsePools parses --pool: comma-separated agent.ParsePoolSpec forms.
func parsePools(s string) ([]agent.PoolSpec, error) {
	var out []agent.PoolSpec
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := agent.ParsePoolSpec(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// parseReserve parses a reserve flag: "" is the default (0), "none" is -1.
func parseReserve(s string) (int64, error) {
	switch s {
	case "":
		return 0, nil
	case "none":
		return -1, nil
	}
	n, err := parseSize(s)
	if err == nil && n == 0 {
		n = -1
	}
	return n, err
}

// parseGrace parses --pause-memory-grace into agent.Config's terms: ""
// is the default (0), "0" is straight to disk (negative).
func parseGrace(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not a duration such as 30s or 5m", s)
	case d < 0:
		return 0, fmt.Errorf("%s must not be negative", s)
	case d == 0:
		return -1, nil
	}
	return d, nil
}

// config checks the flags and makes the agent's Config.
func (f *agentFlags) config(dataDir string) (agent.Config, error) {
	cfg := agent.Config{
		DataDir:          dataDir,
		Runsc:            f.runsc,
		Envd:             f.envd,
		TemplateDir:      f.templateDir,
		TemplateCacheDir: f.templateCache,
		NetworkCIDR:      f.networkCIDR,
		NetworkPrefix:    f.networkPrefix,
		CgroupParent:     f.cgroupParent,
		EventsURL:        f.eventsURL,
		EventsToken:      f.eventsToken,
		HostID:           f.hostID,
	}
	n, err := parseSize(f.size)
	if err != nil {
		return cfg, fmt.Errorf("--default-rootfs-size: %w", err)
	}
	if n == 0 {
		return cfg, errors.New("--default-rootfs-size must be positive")
	}
	cfg.DefaultRootfsSize = n
	if cfg.MemoryReserveBytes, err = parseReserve(f.memReserve); err != nil {
		return cfg, fmt.Errorf("--memory-reserve: %w", err)
	}
	if cfg.DiskReserveBytes, err = parseReserve(f.diskReserve); err != nil {
		return cfg, fmt.Errorf("--disk-reserve: %w", err)
	}
	if f.pidsLimit < 0 || f.maxSandboxes < 0 || f.memOvercommit < 0 || f.diskOvercommit < 0 {
		return cfg, errors.New("--pids-limit, --max-sandboxes and the overcommit ratios must not be negative")
	}
	cfg.MemoryOvercommit, cfg.DiskOvercommit = f.memOvercommit, f.diskOvercommit
	cfg.PidsLimit, cfg.MaxSandboxes, cfg.MaxSnapshots = int64(f.pidsLimit), f.maxSandboxes, f.maxSnapshots
	if cfg.Pools, err = parsePools(f.pools); err != nil {
		return cfg, fmt.Errorf("--pool: %w", err)
	}
	cfg.PoolMemoryMB = f.poolMemoryMB
	if cfg.PauseMemoryGrace, err = parseGrace(f.pauseMemoryGrace); err != nil {
		return cfg, fmt.Errorf("--pause-memory-grace: %w", err)
	}
	if cfg.EgressRateBytes, err = parseSize(f.rate); err != nil {
		return cfg, fmt.Errorf("--egress-rate: %w", err)
	}
	if cfg.EgressRateBytes == 0 {
		cfg.EgressRateBytes = -1 // no limit
	}
	if cfg.EgressBurstBytes, err = parseSize(f.burst); err != nil {
		return cfg, fmt.Errorf("--egress-burst: %w", err)
	}
	if cfg.EgressRateBytes > 0 && cfg.EgressBurstBytes == 0 {
		return cfg, errors.New("--egress-burst must be positive when --egress-rate is set")
	}
	if cfg.EgressDeny, err = egress.ParseList(f.egressDeny); err != nil {
		return cfg, fmt.Errorf("--egress-deny: %w", err)
	}
	if cfg.Runsc == "" {
		places := runscPlaces{exeDir: f.exeDir, dataDir: f.runscDataDir, path: os.Getenv("PATH")}
		if places.dataDir == "" {
			places.dataDir = dataDir
		}
		if cfg.Runsc, err = places.find(); err != nil {
			return cfg, err
		}
	}
	if abs, err := filepath.Abs(cfg.DataDir); err == nil {
		cfg.DataDir = abs
	}
	return cfg, nil
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

// besides returns dir/name if that file exists, else "".
func besides(dir, name string) string {
	if dir == "" {
		return ""
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}
