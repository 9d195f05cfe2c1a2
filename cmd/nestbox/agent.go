package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"nestbox.dev/internal/agent"
	"nestbox.dev/internal/egress"
)

// runAgent is `nestbox agent`: it serves the host agent until ctx is done.
// Sandboxes keep running when it stops; the next start adopts them.
func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, listen, logLevel, err := parseAgentFlags(args, stderr)
	if err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
	cfg.Progress = stderr
	a, err := agent.New(ctx, cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	cfg.Logger.Info("agent listening", "addr", ln.Addr().String(), "data_dir", cfg.DataDir)
	var wg sync.WaitGroup
	wg.Go(func() { a.Run(ctx) })
	err = a.Serve(ctx, ln)
	wg.Wait()
	return err
}

// parseAgentFlags reads the agent's flags; each defaults to an environment
// variable, then to a built-in value.
func parseAgentFlags(args []string, stderr io.Writer) (agent.Config, string, slog.Level, error) {
	fs := flag.NewFlagSet("nestbox agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		dataDir, listen string
		logLevel        slog.Level
	)
	fs.StringVar(&dataDir, "data-dir", env("NESTBOX_DATA_DIR", "/var/lib/nestbox"), "state directory: sandboxes, templates, runtime state (env NESTBOX_DATA_DIR)")
	fs.StringVar(&listen, "listen", env("NESTBOX_AGENT_LISTEN", "127.0.0.1:5007"), "address of the agent's API and sandbox proxy (env NESTBOX_AGENT_LISTEN)")
	af := registerAgentFlags(fs)
	fs.StringVar(&af.eventsURL, "events-url", env("NESTBOX_EVENTS_URL", ""), "URL to POST sandbox events to, e.g. http://cp:8080/v1/hosts/sandbox-events; empty sends none (env NESTBOX_EVENTS_URL)")
	fs.StringVar(&af.eventsToken, "events-token", env("NESTBOX_EVENTS_TOKEN", ""), "bearer token sent with events: the control plane's host token (env NESTBOX_EVENTS_TOKEN)")
	fs.StringVar(&af.hostID, "host-id", env("NESTBOX_HOST_ID", ""), "this host's ID in events (env NESTBOX_HOST_ID)")
	fs.TextVar(&logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return agent.Config{}, "", 0, err
	}
	if fs.NArg() > 0 {
		return agent.Config{}, "", 0, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	cfg, err := af.config(dataDir)
	return cfg, listen, logLevel, err
}

// agentFlags are the host agent's settings shared by `nestbox agent` and
// `nestbox up`.
type agentFlags struct {
	runsc, envd, templateDir, templateCache, networkCIDR, networkPrefix, cgroupParent string
	size, rate, burst, egressDeny                                                     string
	eventsURL, eventsToken, hostID                                                    string
}

func registerAgentFlags(fs *flag.FlagSet) *agentFlags {
	var f agentFlags
	exeDir := ""
	if exe, err := os.Executable(); err == nil {
		exeDir = filepath.Dir(exe)
	}
	fs.StringVar(&f.runsc, "runsc", env("NESTBOX_RUNSC", besides(exeDir, "runsc")), "static runsc binary (env NESTBOX_RUNSC; default: runsc next to nestbox)")
	fs.StringVar(&f.envd, "envd", env("NESTBOX_ENVD", besides(exeDir, "envd")), "static envd binary put into templates (env NESTBOX_ENVD; default: envd next to nestbox)")
	fs.StringVar(&f.templateDir, "template-dir", env("NESTBOX_TEMPLATE_DIR", ""), "where templates are kept (env NESTBOX_TEMPLATE_DIR; default <data-dir>/templates)")
	fs.StringVar(&f.templateCache, "template-cache-dir", env("NESTBOX_TEMPLATE_CACHE_DIR", ""), "where downloaded packages are kept between template builds (env NESTBOX_TEMPLATE_CACHE_DIR; default <template-dir>/.cache)")
	fs.StringVar(&f.networkCIDR, "network-cidr", env("NESTBOX_NETWORK_CIDR", ""), "private range for sandbox addresses (env NESTBOX_NETWORK_CIDR; default 10.200.0.0/16)")
	fs.StringVar(&f.networkPrefix, "network-prefix", env("NESTBOX_NETWORK_PREFIX", ""), "prefix of this agent's netns, link and nft names; two agents on one host need different ones (env NESTBOX_NETWORK_PREFIX; default nbx)")
	fs.StringVar(&f.cgroupParent, "cgroup-parent", env("NESTBOX_CGROUP_PARENT", ""), "cgroup under which each sandbox gets its own (env NESTBOX_CGROUP_PARENT; default /nestbox)")
	fs.StringVar(&f.size, "default-rootfs-size", env("NESTBOX_DEFAULT_ROOTFS_SIZE", "5Gi"), "writable-layer size of sandboxes that ask for none, e.g. 5Gi (env NESTBOX_DEFAULT_ROOTFS_SIZE)")
	fs.StringVar(&f.rate, "egress-rate", env("NESTBOX_EGRESS_RATE", "200Mi"), "what each sandbox may send, in bytes per second, e.g. 200Mi; 0 for no limit (env NESTBOX_EGRESS_RATE)")
	fs.StringVar(&f.burst, "egress-burst", env("NESTBOX_EGRESS_BURST", "100Mi"), "burst above the egress rate, in bytes (env NESTBOX_EGRESS_BURST)")
	fs.StringVar(&f.egressDeny, "egress-deny", env("NESTBOX_EGRESS_DENY", "default"), "destinations no sandbox may reach whatever its allow list says: comma-separated IPv4 addresses and prefixes, \"default\" for the built-in list (metadata, private, shared and reserved ranges), \"\" for none; the sandbox pool and the host's own addresses are always denied (env NESTBOX_EGRESS_DENY)")
	return &f
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
	if cfg.EgressDeny == nil {
		cfg.EgressDeny = []netip.Prefix{} // "" is an empty list, not the default
	}
	if cfg.Runsc == "" {
		return cfg, errors.New("no runsc binary: build one with `make runsc` and pass --runsc")
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

// besides returns dir/name if that file exists, else "". The runsc on PATH
// is not a fallback: distributions ship versions without systrap.
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
