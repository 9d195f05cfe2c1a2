package fake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/driver/drivertest"
)

// loopbackEnvd runs each sandbox's envd on a free port of 127.0.0.1.
func loopbackEnvd(driver.Spec) (netip.AddrPort, error) {
	return netip.MustParseAddrPort("127.0.0.1:0"), nil
}

func TestConformance(t *testing.T) {
	var n atomic.Int64
	newSpec := func(t *testing.T) driver.Spec {
		return driver.Spec{ID: fmt.Sprintf("nbx-fake-%08d", n.Add(1)), Dir: t.TempDir()}
	}
	t.Run("Records", func(t *testing.T) {
		drivertest.Run(t, func(t *testing.T) drivertest.Env {
			return drivertest.Env{Driver: &Driver{}, NewSpec: newSpec}
		})
	})
	t.Run("WithEnvd", func(t *testing.T) {
		d := &Driver{EnvdAddr: loopbackEnvd}
		drivertest.Run(t, func(t *testing.T) drivertest.Env {
			return drivertest.Env{
				Driver:  d,
				NewSpec: newSpec,
				Healthy: func(ctx context.Context, t *testing.T, spec driver.Spec) error {
					code, _, err := envdCall(ctx, d, spec.ID, http.MethodGet, "/health", "", "")
					if err == nil && code != http.StatusNoContent {
						err = fmt.Errorf("health: %d", code)
					}
					return err
				},
			}
		})
	})
}

func TestFailCreateAndCrash(t *testing.T) {
	boom := errors.New("boom")
	d := &Driver{FailCreate: boom}
	if err := d.Create(context.Background(), driver.Spec{ID: "a"}); !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	d.FailCreate = nil
	d.Create(context.Background(), driver.Spec{ID: "a"})
	d.Crash("a")
	if st, _ := d.State(context.Background(), "a"); st != driver.StateStopped {
		t.Fatalf("after crash: %v", st)
	}
}

// envdCall makes one request to sandbox id's envd and returns the status
// and body.
func envdCall(ctx context.Context, d *Driver, id, method, path, token, body string) (int, string, error) {
	addr, ok := d.EnvdAddress(id)
	if !ok {
		return 0, "", fmt.Errorf("sandbox %s serves no envd", id)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr.String()+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("X-Access-Token", token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestEnvdFollowsTheSandbox checks the envd a fake sandbox serves: /init
// sets its token and env vars, a paused sandbox answers nothing until
// resumed, a checkpoint stops it (connections refused) and a restore
// brings it back with its settings; a crash and a destroy stop it.
func TestEnvdFollowsTheSandbox(t *testing.T) {
	ctx := context.Background()
	d := &Driver{EnvdAddr: loopbackEnvd}
	spec := driver.Spec{ID: "nbx-fake-envd", Dir: t.TempDir(), Rootfs: t.TempDir()}
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Destroy(ctx, spec.ID) })
	if code, body, err := envdCall(ctx, d, spec.ID, http.MethodPost, "/init", "",
		`{"envVars":{"GREETING":"hi"},"accessToken":"tok"}`); err != nil || code != http.StatusNoContent {
		t.Fatalf("init: %d %q %v", code, body, err)
	}
	wantEnvs := func(when string) {
		t.Helper()
		if code, _, err := envdCall(ctx, d, spec.ID, http.MethodGet, "/envs", "", ""); err != nil || code != http.StatusUnauthorized {
			t.Fatalf("%s: /envs without the token: %d %v, want 401", when, code, err)
		}
		code, body, err := envdCall(ctx, d, spec.ID, http.MethodGet, "/envs", "tok", "")
		var envs map[string]string
		if err == nil {
			err = json.Unmarshal([]byte(body), &envs)
		}
		if err != nil || code != http.StatusOK || envs["GREETING"] != "hi" {
			t.Fatalf("%s: /envs: %d %q %v, want GREETING=hi", when, code, body, err)
		}
	}
	wantEnvs("after init")

	// Paused: a request waits (here until its deadline) instead of
	// being answered.
	if err := d.Pause(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, _, err := envdCall(pctx, d, spec.ID, http.MethodGet, "/health", "", "")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("health of a paused sandbox: %v, want no answer", err)
	}
	if err := d.Resume(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	wantEnvs("after resume")

	addr, _ := d.EnvdAddress(spec.ID)
	img := filepath.Join(t.TempDir(), "images")
	if err := d.Checkpoint(ctx, spec.ID, img); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.EnvdAddress(spec.ID); ok {
		t.Fatal("a checkpointed sandbox still serves envd")
	}
	if _, err := http.Get("http://" + addr.String() + "/health"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("envd of a checkpointed sandbox at %s: %v, want connection refused", addr, err)
	}
	// As with runsc, an image restores under another ID too (a fork).
	if err := d.Restore(ctx, driver.Spec{ID: "nbx-fake-other", Dir: spec.Dir}, img); err != nil {
		t.Fatalf("restore of the image as another sandbox: %v", err)
	}
	if st, _ := d.State(ctx, "nbx-fake-other"); st != driver.StateRunning {
		t.Fatalf("the sandbox restored under another ID is %s, want running", st)
	}
	if err := d.Destroy(ctx, "nbx-fake-other"); err != nil {
		t.Fatal(err)
	}
	if err := d.Restore(ctx, spec, img); err != nil {
		t.Fatal(err)
	}
	wantEnvs("after restore")

	// A damaged image is not restored.
	if err := d.Checkpoint(ctx, spec.ID, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(img, checkpointFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Restore(ctx, spec, img); err == nil {
		t.Fatal("restore of a damaged image succeeded")
	}
	if ids, _ := d.List(ctx); len(ids) != 0 {
		t.Fatalf("after a failed restore: %v", ids)
	}

	// A crash stops envd; so does a destroy.
	for _, end := range []func(){func() { d.Crash(spec.ID) }, func() { d.Destroy(ctx, spec.ID) }} {
		d.Destroy(ctx, spec.ID)
		if err := d.Create(ctx, spec); err != nil {
			t.Fatal(err)
		}
		addr, ok := d.EnvdAddress(spec.ID)
		if !ok {
			t.Fatal("no envd after create")
		}
		end()
		if _, err := http.Get("http://" + addr.String() + "/health"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("envd at %s after the sandbox ended: %v, want connection refused", addr, err)
		}
	}
}
