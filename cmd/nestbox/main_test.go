package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHelpListsCommands(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--help"}, &stdout, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, c := range commands {
		if !strings.Contains(stdout.String(), c.name) {
			t.Errorf("help does not list %q:\n%s", c.name, stdout.String())
		}
	}
	if err := run(context.Background(), []string{"frobnicate"}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("unknown command: %v", err)
	}
	if err := run(context.Background(), nil, &stdout, &stderr); err == nil {
		t.Error("no command accepted")
	}
}

func TestAgentHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"agent", "--help"}, &stdout, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("agent --help: %v", err)
	}
	for _, f := range []string{"-data-dir", "-listen", "-events-url", "-runsc", "-envd", "-network-cidr", "-default-rootfs-size", "NESTBOX_DEFAULT_ROOTFS_SIZE"} {
		if !strings.Contains(stderr.String(), f) {
			t.Errorf("agent --help does not mention %s", f)
		}
	}
}

func TestAgentFlags(t *testing.T) {
	runsc := filepath.Join(t.TempDir(), "runsc")
	os.WriteFile(runsc, nil, 0o755)
	t.Setenv("NESTBOX_RUNSC", runsc)
	t.Setenv("NESTBOX_DATA_DIR", "/srv/nestbox")
	t.Setenv("NESTBOX_DEFAULT_ROOTFS_SIZE", "2Gi")
	t.Setenv("NESTBOX_AGENT_LISTEN", "")

	cfg, listen, _, tokenFile, err := parseAgentFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/srv/nestbox" || cfg.DefaultRootfsSize != 2<<30 || listen != "127.0.0.1:5007" || cfg.Runsc != runsc ||
		cfg.EgressRateBytes != 200<<20 || cfg.EgressBurstBytes != 100<<20 {
		t.Errorf("from the environment: %+v, listen %s", cfg, listen)
	}
	if tokenFile != "/srv/nestbox/agent-token" || cfg.Token != "" {
		t.Errorf("agent token: file %q, token %q; want <data-dir>/agent-token, read later", tokenFile, cfg.Token)
	}

	// Flags win over the environment.
	cfg, listen, _, _, err = parseAgentFlags([]string{"--data-dir", "/data", "--default-rootfs-size", "512Mi",
		"--listen", "0.0.0.0:9000", "--events-url", "http://cp/v1/hosts/sandbox-events", "--network-cidr", "10.9.0.0/16"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/data" || cfg.DefaultRootfsSize != 512<<20 || listen != "0.0.0.0:9000" ||
		cfg.EventsURL != "http://cp/v1/hosts/sandbox-events" || cfg.NetworkCIDR != "10.9.0.0/16" {
		t.Errorf("from flags: %+v, listen %s", cfg, listen)
	}

	if cfg, _, _, _, err := parseAgentFlags([]string{"--max-snapshots", "5"}, &bytes.Buffer{}); err != nil || cfg.MaxSnapshots != 5 {
		t.Errorf("--max-snapshots 5: %d, %v", cfg.MaxSnapshots, err)
	}
	if cfg, _, _, _, err := parseAgentFlags([]string{"--egress-rate", "0"}, &bytes.Buffer{}); err != nil || cfg.EgressRateBytes >= 0 {
		t.Errorf("--egress-rate 0 must mean unlimited (negative): %d, %v", cfg.EgressRateBytes, err)
	}
	for _, tc := range []struct {
		flag string
		want time.Duration
	}{{"", 0}, {"0", -1}, {"2m", 2 * time.Minute}} {
		cfg, _, _, _, err := parseAgentFlags([]string{"--pause-memory-grace=" + tc.flag}, &bytes.Buffer{})
		if err != nil || cfg.PauseMemoryGrace != tc.want {
			t.Errorf("--pause-memory-grace %q: %v, %v; want %v", tc.flag, cfg.PauseMemoryGrace, err, tc.want)
		}
	}
	for _, args := range [][]string{
		{"--pause-memory-grace", "soon"},
		{"--pause-memory-grace", "-1s"},
		{"--egress-rate", "fast"},
		{"--egress-rate", "10Mi", "--egress-burst", "0"},
		{"--default-rootfs-size", "5GB"},
		{"--default-rootfs-size", "0"},
		{"extra"},
	} {
		if _, _, _, _, err := parseAgentFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	t.Setenv("NESTBOX_RUNSC", "")
	if _, _, _, _, err := parseAgentFlags([]string{"--runsc", ""}, &bytes.Buffer{}); err == nil {
		t.Error("no runsc accepted")
	}
}

// TestAgentSecretsNotOnArgv checks that the agent's secrets come from
// files or the environment, never from the command line (where ps shows
// them to every local user).
func TestAgentSecretsNotOnArgv(t *testing.T) {
	dir := t.TempDir()
	runsc := filepath.Join(dir, "runsc")
	os.WriteFile(runsc, nil, 0o755)
	t.Setenv("NESTBOX_RUNSC", runsc)
	t.Setenv("NESTBOX_EVENTS_TOKEN", "")
	t.Setenv("NESTBOX_AGENT_TOKEN", "")

	_, _, _, _, err := parseAgentFlags([]string{"--events-token", "s3cret"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--events-token-file") {
		t.Errorf("--events-token: got %v, want a refusal naming --events-token-file", err)
	}

	file := filepath.Join(dir, "host-token")
	const fromFile = "from-the-file-0123456789abcdef0123456789"
	os.WriteFile(file, []byte(fromFile+"\n"), 0o600)
	cfg, _, _, _, err := parseAgentFlags([]string{"--events-token-file", file}, &bytes.Buffer{})
	if err != nil || cfg.EventsToken != fromFile {
		t.Errorf("--events-token-file: token %q, %v", cfg.EventsToken, err)
	}
	os.Chmod(file, 0o644)
	if _, _, _, _, err := parseAgentFlags([]string{"--events-token-file", file}, &bytes.Buffer{}); err == nil {
		t.Error("an events token file readable by others was accepted")
	}
	t.Setenv("NESTBOX_EVENTS_TOKEN", "from-the-env")
	if cfg, _, _, _, err := parseAgentFlags(nil, &bytes.Buffer{}); err != nil || cfg.EventsToken != "from-the-env" {
		t.Errorf("NESTBOX_EVENTS_TOKEN: token %q, %v", cfg.EventsToken, err)
	}

	t.Setenv("NESTBOX_AGENT_TOKEN", "short")
	if _, _, _, _, err := parseAgentFlags(nil, &bytes.Buffer{}); err == nil {
		t.Error("a 5-character agent token was accepted")
	}
	long := strings.Repeat("k", 64)
	t.Setenv("NESTBOX_AGENT_TOKEN", long)
	if cfg, _, _, _, err := parseAgentFlags(nil, &bytes.Buffer{}); err != nil || cfg.Token != long {
		t.Errorf("NESTBOX_AGENT_TOKEN: token %q, %v", cfg.Token, err)
	}
}

// TestServerNeedsAgentToken checks that `nestbox server` refuses to start
// without the agent's token, and does not take it from argv.
func TestServerNeedsAgentToken(t *testing.T) {
	t.Setenv("NESTBOX_AGENT_TOKEN", "")
	t.Setenv("NESTBOX_AGENT_TOKEN_FILE", "")
	err := runServer(context.Background(), []string{"--data-dir", t.TempDir(), "--agent-url", "http://127.0.0.1:1"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--agent-token-file") {
		t.Errorf("server without an agent token: got %v, want a refusal naming --agent-token-file", err)
	}
	var stderr bytes.Buffer
	if err := runServer(context.Background(), []string{"--agent-token", "x"}, &bytes.Buffer{}, &stderr); err == nil {
		t.Error("--agent-token on argv accepted")
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"5Gi", 5 << 30, true},
		{"512Mi", 512 << 20, true},
		{"64Ki", 64 << 10, true},
		{"1Ti", 1 << 40, true},
		{"1048576", 1 << 20, true},
		{" 2Gi ", 2 << 30, true},
		{"5G", 0, false},
		{"5GB", 0, false},
		{"-1Gi", 0, false},
		{"Gi", 0, false},
		{"", 0, false},
		{"1.5Gi", 0, false},
		{"9999999999Ti", 0, false},
	} {
		got, err := parseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"5Gi", "512Mi", "1", "-1", "9223372036854775807", "8589934591Gi"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err == nil && n < 0 {
			t.Errorf("parseSize(%q) = %d", s, n)
		}
	})
}
