package filesystem

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/proto/filesystempb"
	"nestbox.dev/internal/proto/filesystempb/filesystempbconnect"
	"nestbox.dev/internal/testenv"
)

// waitLimit bounds how long a test waits for an event that must come; it
// only keeps a broken test from hanging.
const waitLimit = 10 * time.Second

type watchStream struct {
	msgs chan *filesystempb.WatchDirResponse
	errc chan error
	seen []string // "TYPE name" of every filesystem event received
}

// watch opens a WatchDir stream, checks its first message is start, and
// pumps the rest into a channel until the test ends.
func watch(t *testing.T, c filesystempbconnect.FilesystemClient, r *connect.Request[filesystempb.WatchDirRequest]) *watchStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := c.WatchDir(ctx, r)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if !st.Receive() {
		cancel()
		t.Fatalf("watch: no first message: %v", st.Err())
	}
	if st.Msg().GetStart() == nil {
		cancel()
		t.Fatalf("watch: first message is %v, want start", st.Msg())
	}
	w := &watchStream{msgs: make(chan *filesystempb.WatchDirResponse, 1000), errc: make(chan error, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for st.Receive() {
			w.msgs <- st.Msg()
		}
		w.errc <- st.Err()
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		st.Close()
	})
	return w
}

// waitEvent returns the first filesystem event of type typ for name.
func (w *watchStream) waitEvent(t *testing.T, typ filesystempb.EventType, name string) *filesystempb.FilesystemEvent {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case m := <-w.msgs:
			e := m.GetFilesystem()
			if e == nil {
				continue
			}
			w.seen = append(w.seen, e.GetType().String()+" "+e.GetName())
			if e.GetType() == typ && e.GetName() == name {
				return e
			}
		case err := <-w.errc:
			t.Fatalf("stream ended waiting for %v %s: %v (seen %v)", typ, name, err, w.seen)
		case <-deadline:
			t.Fatalf("no %v event for %q (seen %v)", typ, name, w.seen)
		}
	}
}

func (w *watchStream) sawEvent(name string) bool {
	for _, s := range w.seen {
		if _, n, _ := strings.Cut(s, " "); n == name {
			return true
		}
	}
	return false
}

const (
	evCreate = filesystempb.EventType_EVENT_TYPE_CREATE
	evWrite  = filesystempb.EventType_EVENT_TYPE_WRITE
	evRemove = filesystempb.EventType_EVENT_TYPE_REMOVE
	evRename = filesystempb.EventType_EVENT_TYPE_RENAME
	evChmod  = filesystempb.EventType_EVENT_TYPE_CHMOD
)

func TestWatchDirEvents(t *testing.T) {
	env := newEnv(t, currentUser(t).Name)
	env.eachCodec(t, func(t *testing.T, c filesystempbconnect.FilesystemClient) {
		dir := t.TempDir()
		w := watch(t, c, req(&filesystempb.WatchDirRequest{Path: dir, IncludeEntry: true}))
		f := filepath.Join(dir, "f.txt")

		writeFile(t, f, "one")
		e := w.waitEvent(t, evCreate, "f.txt")
		if e.GetEntry().GetPath() != f || e.GetEntry().GetType() != filesystempb.FileType_FILE_TYPE_FILE {
			t.Errorf("CREATE entry: got %v", e.GetEntry())
		}
		w.waitEvent(t, evWrite, "f.txt")

		if err := os.Chmod(f, 0o600); err != nil {
			t.Fatal(err)
		}
		if e := w.waitEvent(t, evChmod, "f.txt"); e.GetEntry().GetMode() != 0o600 {
			t.Errorf("CHMOD entry mode: got %o", e.GetEntry().GetMode())
		}

		g := filepath.Join(dir, "g.txt")
		if err := os.Rename(f, g); err != nil {
			t.Fatal(err)
		}
		if e := w.waitEvent(t, evRename, "f.txt"); e.Entry != nil {
			t.Errorf("RENAME of a path that is gone carries an entry: %v", e.GetEntry())
		}
		w.waitEvent(t, evCreate, "g.txt")

		if err := os.Remove(g); err != nil {
			t.Fatal(err)
		}
		if e := w.waitEvent(t, evRemove, "g.txt"); e.Entry != nil {
			t.Errorf("REMOVE carries an entry: %v", e.GetEntry())
		}
	})
}

func TestWatchDirNotRecursive(t *testing.T) {
	env := newEnv(t, currentUser(t).Name)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "sub", "old"), "")
	w := watch(t, env.clients["json"], req(&filesystempb.WatchDirRequest{Path: dir}))
	writeFile(t, filepath.Join(dir, "sub", "f"), "x")
	writeFile(t, filepath.Join(dir, "marker"), "m")
	w.waitEvent(t, evCreate, "marker")
	if w.sawEvent("sub/f") {
		t.Errorf("a non-recursive watch reported sub/f: %v", w.seen)
	}
	if e := w.waitEvent(t, evWrite, "marker"); e.Entry != nil {
		t.Errorf("entry sent without include_entry: %v", e.GetEntry())
	}
}

func TestWatchDirRecursive(t *testing.T) {
	env := newEnv(t, currentUser(t).Name)
	env.eachCodec(t, func(t *testing.T, c filesystempbconnect.FilesystemClient) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "old", "f"), "")
		w := watch(t, c, req(&filesystempb.WatchDirRequest{Path: dir, Recursive: true}))

		// A directory that existed when the watch started.
		writeFile(t, filepath.Join(dir, "old", "f"), "changed")
		w.waitEvent(t, evWrite, "old/f")

		// One created after it started.
		if err := os.Mkdir(filepath.Join(dir, "new"), 0o755); err != nil {
			t.Fatal(err)
		}
		w.waitEvent(t, evCreate, "new")
		writeFile(t, filepath.Join(dir, "new", "f"), "x")
		w.waitEvent(t, evCreate, "new/f")
		w.waitEvent(t, evWrite, "new/f")

		// mkdir -p and a file right away: created before any watch
		// could be added below "deep".
		writeFile(t, filepath.Join(dir, "deep", "a", "b", "f"), "x")
		w.waitEvent(t, evCreate, "deep/a/b/f")
		writeFile(t, filepath.Join(dir, "deep", "a", "b", "f"), "again")
		w.waitEvent(t, evWrite, "deep/a/b/f")

		// A directory renamed within the tree is followed at its new path.
		if err := os.Rename(filepath.Join(dir, "new"), filepath.Join(dir, "moved")); err != nil {
			t.Fatal(err)
		}
		w.waitEvent(t, evRename, "new")
		w.waitEvent(t, evCreate, "moved")
		writeFile(t, filepath.Join(dir, "moved", "g"), "x")
		w.waitEvent(t, evCreate, "moved/g")

		// A removed directory's events stop; a new one with the same
		// name is watched again.
		if err := os.RemoveAll(filepath.Join(dir, "moved")); err != nil {
			t.Fatal(err)
		}
		w.waitEvent(t, evRemove, "moved")
		writeFile(t, filepath.Join(dir, "moved", "h"), "x")
		w.waitEvent(t, evCreate, "moved/h")
	})
}

func TestWatchDirIgnoresUploadTemporaries(t *testing.T) {
	env := newEnv(t, currentUser(t).Name)
	dir := t.TempDir()
	w := watch(t, env.clients["json"], req(&filesystempb.WatchDirRequest{Path: dir, Recursive: true}))
	tmp := filepath.Join(dir, UploadTempPrefix+"123")
	writeFile(t, tmp, "x")
	if err := os.Rename(tmp, filepath.Join(dir, "target")); err != nil {
		t.Fatal(err)
	}
	w.waitEvent(t, evCreate, "target")
	if w.sawEvent(UploadTempPrefix + "123") {
		t.Errorf("temporary upload file reported: %v", w.seen)
	}
}

func TestWatchDirKeepalive(t *testing.T) {
	env := newEnv(t, currentUser(t).Name)
	r := req(&filesystempb.WatchDirRequest{Path: t.TempDir()})
	r.Header().Set("Keepalive-Ping-Interval", "1")
	w := watch(t, env.clients["json"], r)
	deadline := time.After(waitLimit)
	for n := 0; n < 2; {
		select {
		case m := <-w.msgs:
			if m.GetKeepalive() != nil {
				n++
			}
		case err := <-w.errc:
			t.Fatalf("stream ended: %v", err)
		case <-deadline:
			t.Fatal("no keepalive events")
		}
	}
}

func TestWatchDirErrors(t *testing.T) {
	env := newEnv(t, currentUser(t).Name)
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	writeFile(t, file, "")
	env.eachCodec(t, func(t *testing.T, c filesystempbconnect.FilesystemClient) {
		for path, code := range map[string]connect.Code{
			filepath.Join(dir, "missing"): connect.CodeNotFound,
			file:                          connect.CodeInvalidArgument,
		} {
			st, err := c.WatchDir(bg(), req(&filesystempb.WatchDirRequest{Path: path}))
			if err == nil {
				if st.Receive() {
					t.Errorf("watch %s: got message %v, want an error", path, st.Msg())
				}
				err = st.Err()
				st.Close()
			}
			wantCode(t, err, code, "watch "+path)
		}
	})
}

func TestCloseEndsWatches(t *testing.T) {
	env := newEnv(t, currentUser(t).Name)
	w := watch(t, env.clients["json"], req(&filesystempb.WatchDirRequest{Path: t.TempDir()}))
	created, err := env.clients["json"].CreateWatcher(bg(), req(&filesystempb.CreateWatcherRequest{Path: t.TempDir()}))
	if err != nil {
		t.Fatal(err)
	}
	if err := env.svc.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-w.errc:
		wantCode(t, err, connect.CodeUnavailable, "stream after Close")
	case <-time.After(waitLimit):
		t.Fatal("stream still open after Close")
	}
	_, err = env.clients["json"].GetWatcherEvents(bg(), req(&filesystempb.GetWatcherEventsRequest{WatcherId: created.Msg.GetWatcherId()}))
	wantCode(t, err, connect.CodeNotFound, "polling watcher after Close")
	_, err = env.clients["json"].CreateWatcher(bg(), req(&filesystempb.CreateWatcherRequest{Path: t.TempDir()}))
	wantCode(t, err, connect.CodeUnavailable, "CreateWatcher after Close")
}

func TestPollingWatcher(t *testing.T) {
	env := newEnv(t, currentUser(t).Name)
	env.eachCodec(t, func(t *testing.T, c filesystempbconnect.FilesystemClient) {
		dir := t.TempDir()
		res, err := c.CreateWatcher(bg(), req(&filesystempb.CreateWatcherRequest{Path: dir, Recursive: true, IncludeEntry: true}))
		if err != nil {
			t.Fatal(err)
		}
		id := res.Msg.GetWatcherId()
		if id == "" {
			t.Fatal("empty watcher id")
		}
		get := func() []*filesystempb.FilesystemEvent {
			t.Helper()
			res, err := c.GetWatcherEvents(bg(), req(&filesystempb.GetWatcherEventsRequest{WatcherId: id}))
			if err != nil {
				t.Fatal(err)
			}
			return res.Msg.GetEvents()
		}
		if evs := get(); len(evs) != 0 {
			t.Fatalf("events before any change: %v", evs)
		}
		writeFile(t, filepath.Join(dir, "sub", "f"), "x")
		var seen []string
		deadline := time.Now().Add(waitLimit)
		for !slices.Contains(seen, "EVENT_TYPE_CREATE sub/f") {
			if time.Now().After(deadline) {
				t.Fatalf("no CREATE sub/f event; got %v", seen)
			}
			for _, e := range get() {
				seen = append(seen, e.GetType().String()+" "+e.GetName())
				if e.GetName() == "sub/f" && e.GetType() == evCreate && e.GetEntry().GetPath() != filepath.Join(dir, "sub", "f") {
					t.Errorf("entry of sub/f: %v", e.GetEntry())
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		if !slices.Contains(seen, "EVENT_TYPE_CREATE sub") {
			t.Errorf("no CREATE sub event: %v", seen)
		}

		if _, err := c.RemoveWatcher(bg(), req(&filesystempb.RemoveWatcherRequest{WatcherId: id})); err != nil {
			t.Fatal(err)
		}
		_, err = c.GetWatcherEvents(bg(), req(&filesystempb.GetWatcherEventsRequest{WatcherId: id}))
		wantCode(t, err, connect.CodeNotFound, "events of a removed watcher")
		_, err = c.RemoveWatcher(bg(), req(&filesystempb.RemoveWatcherRequest{WatcherId: id}))
		wantCode(t, err, connect.CodeNotFound, "removing a removed watcher")
		_, err = c.CreateWatcher(bg(), req(&filesystempb.CreateWatcherRequest{Path: filepath.Join(dir, "missing")}))
		wantCode(t, err, connect.CodeNotFound, "watcher on a missing dir")
		_, err = c.CreateWatcher(bg(), req(&filesystempb.CreateWatcherRequest{Path: filepath.Join(dir, "sub", "f")}))
		wantCode(t, err, connect.CodeInvalidArgument, "watcher on a file")
	})
}

func TestPollingWatcherBound(t *testing.T) {
	pw := &pollWatcher{}
	for i := range MaxBufferedEvents*3 + 7 {
		pw.push([]*filesystempb.FilesystemEvent{{Name: fmt.Sprint(i)}})
		if len(pw.events) > 2*MaxBufferedEvents {
			t.Fatalf("buffer grew to %d events", len(pw.events))
		}
	}
	pw.mu.Lock()
	evs, dropped := pw.take()
	pw.mu.Unlock()
	if len(evs) != MaxBufferedEvents || dropped != 2*MaxBufferedEvents+7 {
		t.Fatalf("got %d events, %d dropped; want %d, %d", len(evs), dropped, MaxBufferedEvents, 2*MaxBufferedEvents+7)
	}
	if first, last := evs[0].GetName(), evs[len(evs)-1].GetName(); first != fmt.Sprint(2*MaxBufferedEvents+7) || last != fmt.Sprint(3*MaxBufferedEvents+6) {
		t.Fatalf("kept %s..%s, want the newest", first, last)
	}
}

func TestWatchDirSkipsPseudoFilesystems(t *testing.T) {
	testenv.RequireRoot(t)
	env := newEnv(t, "root")
	dir := t.TempDir()
	proc := filepath.Join(dir, "proc")
	if err := os.Mkdir(proc, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "proc", "proc", proc).CombinedOutput(); err != nil {
		testenv.Missing(t, "cannot mount procfs: "+string(out))
	}
	t.Cleanup(func() { exec.Command("umount", proc).Run() })
	writeFile(t, filepath.Join(dir, "data", "f"), "")

	d, err := env.svc.openWatch(http.Header{}, dir, true, false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	if _, ok := d.dirs[filepath.Join(dir, "data")]; !ok {
		t.Errorf("data not watched: %v", d.dirs)
	}
	for p := range d.dirs {
		if strings.HasPrefix(p, proc+"/") {
			t.Fatalf("watching inside procfs: %s", p)
		}
	}
}
