package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/driver/fake"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/network"
	"nestbox.dev/internal/rootfs"
	"nestbox.dev/internal/template"
)

// fakeWorld is a host for agents that needs neither root nor runsc: the
// fake driver, running a real envd per sandbox in the test's process; a
// network of loopback addresses; writable layers of plain directories;
// templates of empty directories. Agents started on one world share its
// data dir and its fakes, as agents restarted on one machine share its
// kernel and disks. The agent's own logic (state files, adoption,
// timeouts, pause tiers, admission, unwinding, events) runs unchanged.
type fakeWorld struct {
	dataDir   string
	driver    *fake.Driver
	net       *fakeNetwork
	layers    *fakeLayers
	templates *fakeTemplates
}

func newFakeWorld(t *testing.T) *fakeWorld {
	t.Helper()
	w := &fakeWorld{
		dataDir:   t.TempDir(),
		net:       newFakeNetwork(),
		layers:    &fakeLayers{held: map[string]rootfs.Layer{}},
		templates: &fakeTemplates{dir: t.TempDir(), built: map[string]template.Info{}},
	}
	w.driver = &fake.Driver{
		EnvdAddr: func(spec driver.Spec) (netip.AddrPort, error) { return w.net.envdAddr(spec.ID) },
		Logger:   testLogger(),
	}
	// envd's snapshot preparation runs on one OS thread until the next
	// /init; here that thread count is this test process's.
	procs := runtime.GOMAXPROCS(0)
	t.Cleanup(func() {
		// Runs after the agents' cleanups: whatever a killed agent left
		// running (and its envd) goes.
		ids, _ := w.driver.List(context.Background())
		for _, id := range ids {
			w.driver.Destroy(context.Background(), id)
		}
		runtime.GOMAXPROCS(procs)
	})
	return w
}

// config is an agent's configuration on w: fast ticks, no reserves of
// memory or disk (admission tests set their own limits).
func (w *fakeWorld) config() Config {
	return Config{
		DataDir:            w.dataDir,
		Token:              testToken,
		Driver:             w.driver,
		Network:            w.net,
		Layers:             w.layers,
		Templates:          w.templates,
		DefaultRootfsSize:  rootfs.MinSize,
		DefaultMemoryMB:    256,
		MemoryReserveBytes: -1,
		DiskReserveBytes:   -1,
		MonitorInterval:    20 * time.Millisecond,
		ReadyTimeout:       5 * time.Second,
		RestoreInitTimeout: 2 * time.Second,
		Logger:             testLogger(),
		ttlTick:            10 * time.Millisecond,
	}
}

// startAgent starts an agent on w, serving on a loopback port. At the
// end of the test it destroys the sandboxes it still has (unless killed),
// then stops.
func (w *fakeWorld) startAgent(t testing.TB, edit func(*Config)) *testAgent {
	t.Helper()
	cfg := w.config()
	if edit != nil {
		edit(&cfg)
	}
	return serveAgent(t, cfg, "")
}

// leftovers lists what is left of any sandbox in w: directories, runtime
// records, network slots and host objects, layers. Empty means a clean
// host.
func (w *fakeWorld) leftovers() []string {
	var out []string
	if entries, _ := os.ReadDir(filepath.Join(w.dataDir, "sandboxes")); len(entries) > 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		out = append(out, fmt.Sprintf("sandbox directories left: %v", names))
	}
	if ids, _ := w.driver.List(context.Background()); len(ids) > 0 {
		out = append(out, fmt.Sprintf("runtime sandboxes left: %v", ids))
	}
	w.net.mu.Lock()
	if len(w.net.used) > 0 {
		out = append(out, fmt.Sprintf("network slots left: %v", w.net.used))
	}
	if len(w.net.built) > 0 {
		out = append(out, fmt.Sprintf("networks left on the host: %v", slices.Sorted(maps.Keys(w.net.built))))
	}
	w.net.mu.Unlock()
	w.layers.mu.Lock()
	if len(w.layers.held) > 0 {
		out = append(out, fmt.Sprintf("writable layers left: %v", slices.Sorted(maps.Keys(w.layers.held))))
	}
	w.layers.mu.Unlock()
	if entries, _ := os.ReadDir(filepath.Join(w.dataDir, snapshotsDirName)); len(entries) > 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		out = append(out, fmt.Sprintf("snapshots left: %v", names))
	}
	return out
}

// assertEmpty fails the test if anything of a sandbox is left in w.
func (w *fakeWorld) assertEmpty(t testing.TB, when string) {
	t.Helper()
	for _, p := range w.leftovers() {
		t.Errorf("%s: %s", when, p)
	}
}

// eventually polls cond every few milliseconds and fails the test with
// what if it is not true within bound.
func eventually(t testing.TB, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", bound, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// refused reports whether nothing listens at addr:EnvdPort any more.
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, strconv.Itoa(EnvdPort)), time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// fakeBlocks hands each fake network of this process its own 127.B/16, so
// that tests never share an address; it starts at a point that depends on
// the process, for test binaries that run at once.
var fakeBlocks atomic.Uint32

// fakeSlots is how many sandboxes a fake network holds.
const fakeSlots = 1000

// fakeNetwork gives each sandbox a loopback address, 127.B.x.y, instead
// of a namespace: every 127/8 address is local on Linux, so each fake
// sandbox's envd listens on its own address at EnvdPort, as in a real
// sandbox, without root. It keeps the books the real network keeps:
// which slot each sandbox holds (the manager's, lost at an agent restart)
// and which sandboxes have their network built on the host (the kernel's,
// which outlive the agent). Safe for concurrent use.
type fakeNetwork struct {
	block byte
	// unique makes networks of the unique-address layout (no NAT
	// namespace), as Config.UniqueGuestAddresses does; by default each
	// has a (pretend) NAT namespace, as the kernel network's default.
	unique atomic.Bool

	// mu guards used, built and egress.
	mu     sync.Mutex
	used   map[int]string             // slot -> sandbox ID
	built  map[string]network.Sandbox // sandbox ID -> its network on the "host"
	egress map[string]network.Options // sandbox ID -> the egress rules it was last given
}

func newFakeNetwork() *fakeNetwork {
	n := fakeBlocks.Add(1) + uint32(os.Getpid())*7
	return &fakeNetwork{block: byte(16 + n%224), used: map[int]string{}, built: map[string]network.Sandbox{}, egress: map[string]network.Options{}}
}

var _ Network = (*fakeNetwork)(nil)

func (n *fakeNetwork) addr(slot int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, n.block, byte(slot / 250), byte(slot%250 + 2)})
}

// envdAddr is where sandbox id's envd listens: its guest address.
func (n *fakeNetwork) envdAddr(id string) (netip.AddrPort, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	sb, ok := n.built[id]
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("sandbox %s has no network", id)
	}
	return netip.AddrPortFrom(sb.GuestIP, EnvdPort), nil
}

// restart forgets the slots, as a new agent's network manager starts
// without them; the networks on the host stay.
func (n *fakeNetwork) restart() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.used = map[int]string{}
}

func (n *fakeNetwork) Setup(ctx context.Context, id string, opts network.Options) (network.Sandbox, error) {
	for _, p := range slices.Concat(opts.AllowOut, opts.DenyOut) {
		if !p.Addr().Is4() {
			return network.Sandbox{}, errdefs.Invalid("egress rule %s: only IPv4 prefixes are supported", p)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for slot := range fakeSlots {
		if _, ok := n.used[slot]; ok {
			continue
		}
		sb := network.Sandbox{ID: id, Slot: slot, GuestIP: n.addr(slot), Bits: 32}
		if !n.unique.Load() {
			// The guest is reached at its own loopback address: the fake
			// has no NAT, only the record of one.
			sb.NATNS, sb.ExposedIP = "/nonexistent/fake-nat-"+id, sb.GuestIP
		}
		// Another test binary on this machine may hold the address.
		if ln, err := net.Listen("tcp", netip.AddrPortFrom(sb.GuestIP, EnvdPort).String()); err != nil {
			continue
		} else {
			ln.Close()
		}
		n.used[slot] = id
		n.built[id] = sb
		n.egress[id] = opts
		return sb, nil
	}
	return network.Sandbox{}, fmt.Errorf("set up network of %s: no free slot: %w", id, errdefs.ErrExhausted)
}

// take gives slot to id unless another sandbox holds it. The caller
// holds n.mu.
func (n *fakeNetwork) take(sb network.Sandbox) error {
	if owner, ok := n.used[sb.Slot]; ok && owner != sb.ID {
		return errdefs.Conflict("network slot %d is used by %s, not %s", sb.Slot, owner, sb.ID)
	}
	n.used[sb.Slot] = sb.ID
	return nil
}

func (n *fakeNetwork) Rebuild(ctx context.Context, sb network.Sandbox, opts network.Options) (network.Sandbox, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.take(sb); err != nil {
		return network.Sandbox{}, err
	}
	n.built[sb.ID] = sb
	return sb, nil
}

func (n *fakeNetwork) SetEgress(ctx context.Context, sb network.Sandbox, opts network.Options) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.built[sb.ID]; !ok {
		return fmt.Errorf("set egress of %s: no network", sb.ID)
	}
	n.egress[sb.ID] = opts
	return nil
}

// egressOf is the egress rules sandbox id (its runtime name) was last
// given.
func (n *fakeNetwork) egressOf(id string) network.Options {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.egress[id]
}

// Readd needs the network built: the real one works in its namespace.
func (n *fakeNetwork) Readd(ctx context.Context, sb network.Sandbox) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.built[sb.ID]; !ok {
		return fmt.Errorf("re-add address of %s: no network", sb.ID)
	}
	return nil
}

func (n *fakeNetwork) Teardown(ctx context.Context, sb network.Sandbox) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.built, sb.ID)
	if sb.Slot >= 0 && n.used[sb.Slot] == sb.ID {
		delete(n.used, sb.Slot)
	}
	return nil
}

func (n *fakeNetwork) Release(ctx context.Context, sb network.Sandbox) error {
	if sb.Slot < 0 {
		return errdefs.Invalid("release network of %s: unknown slot", sb.ID)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.built, sb.ID)
	return nil
}

func (n *fakeNetwork) Adopt(sb network.Sandbox) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.take(sb); err != nil {
		return err
	}
	n.built[sb.ID] = sb
	return nil
}

func (n *fakeNetwork) Reserve(sb network.Sandbox) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.take(sb)
}

func (n *fakeNetwork) Leftovers() ([]string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Sorted(maps.Keys(n.built)), nil
}

// DialControl marks nothing: no rules guard the loopback addresses.
func (n *fakeNetwork) DialControl(string, string, syscall.RawConn) error { return nil }

// slotOf returns the slot sandbox id holds and whether its network is
// built on the host.
func (n *fakeNetwork) slotOf(id string) (slot int, held, built bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for s, owner := range n.used {
		if owner == id {
			slot, held = s, true
		}
	}
	_, built = n.built[id]
	return slot, held, built
}

// fakeLayers makes writable layers of plain directories where rootfs
// mounts them (Root, UpperMount) and a sparse file of the layer's size as
// the image, which admission stats. It records the layers that are
// "mounted"; reboot forgets them, as a reboot unmounts everything.
type fakeLayers struct {
	// mu guards held and syncs.
	mu    sync.Mutex
	held  map[string]rootfs.Layer // by Root
	syncs int
}

var _ Layers = (*fakeLayers)(nil)

func (f *fakeLayers) Mount(ctx context.Context, lower, dir string, size int64) (l rootfs.Layer, err error) {
	if fi, err := os.Stat(lower); err != nil || !fi.IsDir() {
		return rootfs.Layer{}, errdefs.NotFound("template directory %s not found", lower)
	}
	l = rootfs.Layer{Root: filepath.Join(dir, "rootfs"), Image: filepath.Join(dir, "upper.img"),
		UpperMount: filepath.Join(dir, "upper"), Lower: lower, SizeBytes: size}
	defer func() {
		if err != nil {
			f.remove(l)
		}
	}()
	img, err := os.OpenFile(l.Image, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return rootfs.Layer{}, fmt.Errorf("create writable layer: %w", err)
	}
	err = img.Truncate(size)
	if cerr := img.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return rootfs.Layer{}, fmt.Errorf("size writable layer: %w", err)
	}
	for _, d := range []string{l.Root, l.UpperMount} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return rootfs.Layer{}, fmt.Errorf("create writable layer: %w", err)
		}
	}
	f.mu.Lock()
	f.held[l.Root] = l
	f.mu.Unlock()
	return l, nil
}

func (f *fakeLayers) remove(l rootfs.Layer) error {
	return errors.Join(os.RemoveAll(l.Root), os.RemoveAll(l.UpperMount), ignoreMissing(os.Remove(l.Image)))
}

func ignoreMissing(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

func (f *fakeLayers) Unmount(ctx context.Context, l rootfs.Layer) error {
	f.mu.Lock()
	delete(f.held, l.Root)
	f.mu.Unlock()
	return f.remove(l)
}

func (f *fakeLayers) Remount(ctx context.Context, l rootfs.Layer) error {
	if _, err := os.Stat(l.Image); err != nil {
		return fmt.Errorf("remount writable layer: %w", err)
	}
	for _, d := range []string{l.Root, l.UpperMount} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("remount writable layer: %w", err)
		}
	}
	f.mu.Lock()
	f.held[l.Root] = l
	f.mu.Unlock()
	return nil
}

// Sync of a layer that is not mounted is an error: the agent flushes only
// layers its sandboxes run on.
func (f *fakeLayers) Sync(l rootfs.Layer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.held[l.Root]; !ok {
		return fmt.Errorf("sync writable layer %s: not mounted", l.Root)
	}
	f.syncs++
	return nil
}

// Clone copies the image as the real layers do; the copy is not
// "mounted" until Remount. Its source is a mounted layer (a fork's or a
// snapshot's source) or a copy that was never mounted (a snapshot's,
// which has no rootfs directory): a sandbox's layer that is not mounted
// is an error.
func (f *fakeLayers) Clone(ctx context.Context, l rootfs.Layer, dir string) (rootfs.Layer, error) {
	f.mu.Lock()
	_, ok := f.held[l.Root]
	f.mu.Unlock()
	if _, err := os.Stat(l.Root); !ok && !errors.Is(err, os.ErrNotExist) {
		return rootfs.Layer{}, fmt.Errorf("clone writable layer %s: not mounted", l.Root)
	}
	out := rootfs.Layer{Root: filepath.Join(dir, "rootfs"), Image: filepath.Join(dir, "upper.img"),
		UpperMount: filepath.Join(dir, "upper"), Lower: l.Lower, SizeBytes: l.SizeBytes}
	if _, err := rootfs.CopySparse(l.Image, out.Image); err != nil {
		return rootfs.Layer{}, fmt.Errorf("clone writable layer: %w", err)
	}
	return out, nil
}

// reboot forgets every mount, keeping the files.
func (f *fakeLayers) reboot() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held = map[string]rootfs.Layer{}
}

// fakeTemplates provides every known template as an empty directory,
// "built" on first use; it carries no envd (the fake driver runs one in
// the test's process).
type fakeTemplates struct {
	dir string

	// mu guards built.
	mu    sync.Mutex
	built map[string]template.Info
}

var _ Templates = (*fakeTemplates)(nil)

func (f *fakeTemplates) Ensure(ctx context.Context, name string) (string, error) {
	if !template.Known(name) {
		return "", errdefs.NotFound("unknown template %q", name)
	}
	root := filepath.Join(f.dir, name, "rootfs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("build template %s: %w", name, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.built[name]; !ok {
		f.built[name] = template.Info{Name: name, BuiltAt: time.Now().UTC(), SizeBytes: 1 << 20}
	}
	return root, nil
}

func (f *fakeTemplates) Get(name string) (template.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	info, ok := f.built[name]
	if !ok {
		return template.Info{}, errdefs.NotFound("template %q is not built", name)
	}
	return info, nil
}

// EnvdVersion reports what the fake's templates record: the fake envd
// has no version.
func (f *fakeTemplates) EnvdVersion(ctx context.Context, name string) string {
	info, _ := f.Get(name)
	return info.EnvdVersion
}

// envdGet makes a GET to sandbox id's envd through ta's proxy with envd's
// access token and returns the status and body.
func (ta *testAgent) envdGet(t testing.TB, id, token, path string) (int, string) {
	t.Helper()
	return httpGet(t, &http.Client{Transport: envdAuth{token: token}}, ta.envdBase(id)+path)
}
