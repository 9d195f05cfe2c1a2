// Command envd is the agent inside every Nestbox sandbox: it serves E2B's
// envd API (processes, PTYs, files, metrics) on port 49983. In a sandbox it
// is the first process; `envd --dev` runs it on an ordinary machine for
// development and tests.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"nestbox.dev/internal/envd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "envd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("envd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg      envd.Config
		logLevel slog.Level
		version  bool
	)
	fs.IntVar(&cfg.Port, "port", envd.DefaultPort, "port to listen on")
	fs.BoolVar(&cfg.Dev, "dev", false, "run outside a sandbox (no PID-1 duties, no port forwarding)")
	fs.BoolVar(&cfg.PortForward, "port-forward", false, "with --dev: relay loopback-only services to external addresses")
	fs.StringVar(&cfg.DefaultUser, "user", "user", "user for requests that name none")
	fs.StringVar(&cfg.DefaultWorkdir, "workdir", "", "working directory of processes started without one (default: the user's home)")
	fs.Int64Var(&cfg.MaxUploadBytes, "max-upload", 0, "cap on one /files upload in bytes (0: no cap)")
	fs.TextVar(&logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	fs.BoolVar(&version, "version", false, "print the API version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if version {
		fmt.Fprintln(stdout, envd.Version)
		return nil
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
	srv, err := envd.New(cfg)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}
