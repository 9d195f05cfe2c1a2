package agent

import (
	"errors"
	"testing"

	"connectrpc.com/connect"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/testenv"
)

// TestAdmit checks each bound of admit on a made-up host: 8 GiB of memory
// with 1 GiB reserved, 20 GiB free with 2 GiB reserved, at most 4
// sandboxes; one sandbox of 4 GiB memory and a 10 GiB layer holding 3 GiB
// runs already.
func TestAdmit(t *testing.T) {
	a := &Agent{sandboxes: map[string]*sandbox{
		"a": {cfg: &agentpb.SandboxConfig{MemoryMb: 4096, DiskBytes: 10 << 30}},
	}}
	c := hostCapacity{memTotal: 8 << 30, memReserve: 1 << 30, memAvail: 5 << 30, memCommitLimit: 7 << 30,
		diskAvail: 20 << 30, diskReserve: 2 << 30, diskOvercommit: 1, maxSandboxes: 4, allocated: map[string]uint64{"a": 3 << 30}}
	for _, tc := range []struct {
		name     string
		mem      uint32
		disk     int64
		running  int    // extra sandboxes of 0 MiB and 0 bytes
		avail    uint64 // MemAvailable; 0: the default
		diskFree uint64 // free disk; 0: the default
		admitted bool
	}{
		{"fits", 3072, 11 << 30, 0, 0, 0, true},
		{"one MiB past the commit limit", 3073, 1 << 30, 0, 0, 0, false},
		{"memory short now", 64, 1 << 20, 0, 1<<30 - 1, 0, false},
		{"memory just enough now", 64, 1 << 20, 0, 1 << 30, 0, true},
		// 20 free - 7 promised to a - 2 reserve = 11 GiB for the new one.
		{"one MiB too much disk", 512, 11<<30 + 1<<20, 0, 0, 0, false},
		{"disk short now", 64, 1 << 20, 0, 0, 2<<30 - 1, false},
		{"the maximum runs", 64, 1 << 20, 3, 0, 0, false},
		{"below the maximum", 64, 1 << 20, 2, 0, 0, true},
	} {
		for k := range a.sandboxes {
			if k != "a" {
				delete(a.sandboxes, k)
			}
		}
		for i := range tc.running {
			a.sandboxes[string(rune('b'+i))] = &sandbox{cfg: &agentpb.SandboxConfig{}}
		}
		c := c
		if tc.avail != 0 {
			c.memAvail = tc.avail
		}
		if tc.diskFree != 0 {
			c.diskAvail = tc.diskFree
		}
		err := a.admit(c, &agentpb.SandboxConfig{MemoryMb: tc.mem, DiskBytes: tc.disk})
		if tc.admitted != (err == nil) || (err != nil && !errors.Is(err, errdefs.ErrExhausted)) {
			t.Errorf("%s: admit: %v, want admitted %v (or resource exhausted)", tc.name, err, tc.admitted)
		}
	}
}

// TestAdmitPaused: a paused or failed sandbox holds no memory (its runtime
// is gone), so its limit does not count against a create; a resume takes
// its memory again and is admitted like a create, not counting itself.
func TestAdmitPaused(t *testing.T) {
	paused := &sandbox{cfg: &agentpb.SandboxConfig{MemoryMb: 4096}, status: statusPaused}
	a := &Agent{sandboxes: map[string]*sandbox{
		"run": {cfg: &agentpb.SandboxConfig{MemoryMb: 4096}, status: statusRunning},
		"p":   paused,
		"e":   {cfg: &agentpb.SandboxConfig{MemoryMb: 4096}, status: statusError},
	}}
	c := hostCapacity{memTotal: 16 << 30, memReserve: 1 << 30, memAvail: 8 << 30, memCommitLimit: 7 << 30,
		diskAvail: 20 << 30, diskReserve: 2 << 30, diskOvercommit: 1, allocated: map[string]uint64{}}
	if err := a.admit(c, &agentpb.SandboxConfig{MemoryMb: 3072}); err != nil {
		t.Errorf("create of 3 GiB next to 4 GiB running and 8 GiB paused or failed: %v", err)
	}
	if err := a.admitMemory(c, paused, 3072); err != nil {
		t.Errorf("resume of 3 GiB next to 4 GiB running: %v", err)
	}
	if err := a.admitMemory(c, paused, 4096); !errors.Is(err, errdefs.ErrExhausted) {
		t.Errorf("resume of 4 GiB next to 4 GiB running, 7 GiB committed: %v, want resource exhausted", err)
	}
}

// TestAdmissionRefusesOvercommit runs a real agent whose overcommit ratio
// commits 400 MiB to sandboxes, room for one of 256 MiB: the second create is refused with
// resource_exhausted and leaves nothing; after a destroy there is room
// again. Ping reports the capacity the refusal is based on.
func TestAdmissionRefusesOvercommit(t *testing.T) {
	h := newTestHost(t)
	mem, err := readMeminfo()
	if err != nil {
		t.Fatal(err)
	}
	const reserve = 1 << 30
	if mem["MemAvailable"] < 2*reserve {
		testenv.Missing(t, "2 GiB of available memory")
	}
	ratio := float64(400<<20) / float64(mem["MemTotal"]-reserve)
	ta := h.startAgent(t, "", func(c *Config) { c.MemoryReserveBytes, c.MemoryOvercommit = reserve, ratio })

	first := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 256})
	_, err = ta.tryCreate(&agentpb.SandboxConfig{MemoryMb: 256})
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("second create: %v, want resource_exhausted", err)
	}
	t.Logf("refusal: %v", err)
	if n := len(ta.list()); n != 1 {
		t.Errorf("%d sandboxes after the refused create, want 1", n)
	}
	ping, err := ta.client.Ping(t.Context(), connect.NewRequest(&agentpb.PingRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if p := ping.Msg; p.MemoryReservedBytes != reserve || p.MemoryCommitLimitBytes > 400<<20 || p.MemoryCommitLimitBytes < 399<<20 || p.DiskReservedBytes < 2<<30 || p.DiskAllocatedBytes == 0 {
		t.Errorf("ping capacity: %v", p)
	}
	ta.destroyRPC(t, first.Id)
	second := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 256})
	ta.destroyRPC(t, second.Id)
	assertClean(t, h.dataDir)
}
