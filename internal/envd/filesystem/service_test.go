package filesystem

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/envd/settings"
	"nestbox.dev/internal/proto/filesystempb"
	"nestbox.dev/internal/proto/filesystempb/filesystempbconnect"
	"nestbox.dev/internal/testenv"
)

func TestNewNeedsSettings(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without settings: got nil error")
	}
	s, err := New(Config{Settings: settings.New("root", "")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStat(t *testing.T) {
	me := currentUser(t)
	env := newEnv(t, me.Name)
	dir := t.TempDir()
	file := filepath.Join(dir, "a.txt")
	writeFile(t, file, "hello")
	if err := os.Symlink(file, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(dir, "rel-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("missing", filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	if err := os.Chtimes(file, mtime, mtime); err != nil {
		t.Fatal(err)
	}

	env.eachCodec(t, func(t *testing.T, c filesystempbconnect.FilesystemClient) {
		res, err := c.Stat(bg(), req(&filesystempb.StatRequest{Path: file}))
		if err != nil {
			t.Fatal(err)
		}
		e := res.Msg.GetEntry()
		if e.GetName() != "a.txt" || e.GetPath() != file || e.GetType() != filesystempb.FileType_FILE_TYPE_FILE ||
			e.GetSize() != 5 || e.GetMode() != 0o644 || e.GetPermissions() != "-rw-r--r--" ||
			e.GetOwner() != me.Name || e.GetGroup() == "" || !e.GetModifiedTime().AsTime().Equal(mtime) || e.SymlinkTarget != nil {
			t.Errorf("stat file: got %v", e)
		}

		res, err = c.Stat(bg(), req(&filesystempb.StatRequest{Path: dir}))
		if err != nil {
			t.Fatal(err)
		}
		if e := res.Msg.GetEntry(); e.GetType() != filesystempb.FileType_FILE_TYPE_DIRECTORY || e.GetPermissions()[0] != 'd' {
			t.Errorf("stat dir: got %v", e)
		}

		for _, link := range []string{"link", "rel-link"} {
			res, err = c.Stat(bg(), req(&filesystempb.StatRequest{Path: filepath.Join(dir, link)}))
			if err != nil {
				t.Fatal(err)
			}
			e := res.Msg.GetEntry()
			if e.GetType() != filesystempb.FileType_FILE_TYPE_SYMLINK || e.GetSymlinkTarget() != file || e.GetMode() != 0o644 || e.GetPermissions()[0] != 'L' {
				t.Errorf("stat %s: got %v, want a symlink to %s", link, e, file)
			}
		}
		res, err = c.Stat(bg(), req(&filesystempb.StatRequest{Path: filepath.Join(dir, "dangling")}))
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Msg.GetEntry().GetSymlinkTarget(); got != filepath.Join(dir, "missing") {
			t.Errorf("dangling symlink target: got %q", got)
		}

		_, err = c.Stat(bg(), req(&filesystempb.StatRequest{Path: filepath.Join(dir, "missing")}))
		wantCode(t, err, connect.CodeNotFound, "stat missing")
		_, err = c.Stat(bg(), req(&filesystempb.StatRequest{Path: file + "/below-a-file"}))
		wantCode(t, err, connect.CodeNotFound, "stat below a file")
	})
}

func TestRelativePathsResolveAgainstHome(t *testing.T) {
	u := requireTestUser(t)
	env := newEnv(t, u.Name)
	name := "nestbox-rel-" + t.Name()
	t.Cleanup(func() { os.RemoveAll(filepath.Join(u.Home, name)) })
	c := env.clients["json"]
	res, err := c.MakeDir(bg(), req(&filesystempb.MakeDirRequest{Path: name + "/sub"}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Msg.GetEntry().GetPath(), filepath.Join(u.Home, name, "sub"); got != want {
		t.Fatalf("relative MakeDir: got %s, want %s", got, want)
	}
	st, err := c.Stat(bg(), req(&filesystempb.StatRequest{Path: "~/" + name}))
	if err != nil || st.Msg.GetEntry().GetPath() != filepath.Join(u.Home, name) {
		t.Fatalf("stat ~/%s: %v %v", name, st, err)
	}
}

func TestMakeDir(t *testing.T) {
	env := newEnv(t, currentUser(t).Name)
	env.eachCodec(t, func(t *testing.T, c filesystempbconnect.FilesystemClient) {
		dir := t.TempDir()
		deep := filepath.Join(dir, "a", "b", "c")
		res, err := c.MakeDir(bg(), req(&filesystempb.MakeDirRequest{Path: deep}))
		if err != nil {
			t.Fatal(err)
		}
		if e := res.Msg.GetEntry(); e.GetPath() != deep || e.GetType() != filesystempb.FileType_FILE_TYPE_DIRECTORY {
			t.Errorf("make dir: got %v", e)
		}
		if fi, err := os.Stat(deep); err != nil || !fi.IsDir() {
			t.Fatalf("%s not created: %v", deep, err)
		}
		_, err = c.MakeDir(bg(), req(&filesystempb.MakeDirRequest{Path: deep}))
		wantCode(t, err, connect.CodeAlreadyExists, "make existing dir")

		file := filepath.Join(dir, "f")
		writeFile(t, file, "x")
		_, err = c.MakeDir(bg(), req(&filesystempb.MakeDirRequest{Path: file}))
		wantCode(t, err, connect.CodeInvalidArgument, "make dir over a file")
		_, err = c.MakeDir(bg(), req(&filesystempb.MakeDirRequest{Path: file + "/sub"}))
		wantCode(t, err, connect.CodeInvalidArgument, "make dir below a file")
	})
}

func TestCreatedEntriesBelongToTheUser(t *testing.T) {
	u := requireTestUser(t)
	// The default user is root: the Basic auth header must win.
	env := newEnv(t, "root")
	dir := t.TempDir()
	c := env.clients["json"]

	deep := filepath.Join(dir, "x", "y")
	res, err := c.MakeDir(bg(), asUser(req(&filesystempb.MakeDirRequest{Path: deep}), u.Name))
	if err != nil {
		t.Fatal(err)
	}
	if e := res.Msg.GetEntry(); e.GetOwner() != u.Name {
		t.Errorf("MakeDir entry owner: got %q, want %q", e.GetOwner(), u.Name)
	}
	for _, p := range []string{filepath.Join(dir, "x"), deep} {
		if uid, gid := ownerOf(t, p); uid != u.UID || gid != u.GID {
			t.Errorf("%s owned by %d:%d, want %d:%d", p, uid, gid, u.UID, u.GID)
		}
	}
	if uid, _ := ownerOf(t, dir); uid != 0 {
		t.Errorf("existing parent %s changed owner to %d", dir, uid)
	}

	// Move creates the destination's parents for the user too.
	src := filepath.Join(dir, "src")
	writeFile(t, src, "x")
	dst := filepath.Join(dir, "p", "q", "dst")
	if _, err := c.Move(bg(), asUser(req(&filesystempb.MoveRequest{Source: src, Destination: dst}), u.Name)); err != nil {
		t.Fatal(err)
	}
	if uid, _ := ownerOf(t, filepath.Join(dir, "p", "q")); uid != u.UID {
		t.Errorf("Move's new parent owned by %d, want %d", uid, u.UID)
	}

	// Without a header, the default user from the settings.
	env.settings.Apply(settings.Update{DefaultUser: u.Name})
	other := filepath.Join(dir, "by-default")
	if _, err := c.MakeDir(bg(), req(&filesystempb.MakeDirRequest{Path: other})); err != nil {
		t.Fatal(err)
	}
	if uid, _ := ownerOf(t, other); uid != u.UID {
		t.Errorf("default user's dir owned by %d, want %d", uid, u.UID)
	}
}

func TestMove(t *testing.T) {
	env := newEnv(t, currentUser(t).Name)
	env.eachCodec(t, func(t *testing.T, c filesystempbconnect.FilesystemClient) {
		dir := t.TempDir()
		src := filepath.Join(dir, "a.txt")
		writeFile(t, src, "data")
		if err := SetMetadata(src, map[string]string{"k": "v"}); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, "new", "parent", "b.txt")
		res, err := c.Move(bg(), req(&filesystempb.MoveRequest{Source: src, Destination: dst}))
		if err != nil {
			t.Fatal(err)
		}
		e := res.Msg.GetEntry()
		if e.GetPath() != dst || e.GetName() != "b.txt" || e.GetMetadata()["k"] != "v" {
			t.Errorf("move: got %v", e)
		}
		if b, err := os.ReadFile(dst); err != nil || string(b) != "data" {
			t.Errorf("moved content: %q, %v", b, err)
		}
		if _, err := os.Lstat(src); !os.IsNotExist(err) {
			t.Errorf("source still there: %v", err)
		}
		_, err = c.Move(bg(), req(&filesystempb.MoveRequest{Source: src, Destination: dst}))
		wantCode(t, err, connect.CodeNotFound, "move missing source")
		_, err = c.Move(bg(), req(&filesystempb.MoveRequest{Source: dst}))
		wantCode(t, err, connect.CodeInvalidArgument, "move to empty destination")

		// A directory onto a non-empty directory.
		writeFile(t, filepath.Join(dir, "d1", "x"), "")
		writeFile(t, filepath.Join(dir, "d2", "y"), "")
		_, err = c.Move(bg(), req(&filesystempb.MoveRequest{Source: filepath.Join(dir, "d1"), Destination: filepath.Join(dir, "d2")}))
		wantCode(t, err, connect.CodeAlreadyExists, "move dir onto non-empty dir")
	})
}

func TestListDir(t *testing.T) {
	env := newEnv(t, currentUser(t).Name)
	dir := t.TempDir()
	for _, p := range []string{"f1", "a/f2", "a/b/f3", "a/b/c/f4", "a/b/c/d/f5"} {
		writeFile(t, filepath.Join(dir, p), p)
	}
	// A symlinked directory is an entry, not descended into (it loops).
	if err := os.Symlink(dir, filepath.Join(dir, "a", "loop")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "a"), filepath.Join(t.TempDir(), "x")); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		depth uint32
		want  []string
	}{
		{0, []string{"a", "f1"}},
		{1, []string{"a", "f1"}},
		{2, []string{"a", "a/b", "a/f2", "a/loop", "f1"}},
		{3, []string{"a", "a/b", "a/b/c", "a/b/f3", "a/f2", "a/loop", "f1"}},
		{10, []string{"a", "a/b", "a/b/c", "a/b/c/d", "a/b/c/d/f5", "a/b/c/f4", "a/b/f3", "a/f2", "a/loop", "f1"}},
	} {
		t.Run("depth"+itoa(tc.depth), func(t *testing.T) {
			env.eachCodec(t, func(t *testing.T, c filesystempbconnect.FilesystemClient) {
				res, err := c.ListDir(bg(), req(&filesystempb.ListDirRequest{Path: dir, Depth: tc.depth}))
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, e := range res.Msg.GetEntries() {
					rel, _ := filepath.Rel(dir, e.GetPath())
					got = append(got, rel)
					if e.GetName() != filepath.Base(e.GetPath()) {
						t.Errorf("entry %s has name %q", e.GetPath(), e.GetName())
					}
					if rel == "a/loop" && (e.GetType() != filesystempb.FileType_FILE_TYPE_SYMLINK || e.GetSymlinkTarget() != dir) {
						t.Errorf("symlink entry: got %v", e)
					}
				}
				slices.Sort(got)
				if !slices.Equal(got, tc.want) {
					t.Errorf("depth %d: got %v, want %v", tc.depth, got, tc.want)
				}
			})
		})
	}

	c := env.clients["json"]
	res, err := c.ListDir(bg(), req(&filesystempb.ListDirRequest{Path: filepath.Join(dir, "a", "b", "c", "d")}))
	if err != nil || len(res.Msg.GetEntries()) != 1 {
		t.Fatalf("list leaf dir: %v, %v", res, err)
	}
	_, err = c.ListDir(bg(), req(&filesystempb.ListDirRequest{Path: filepath.Join(dir, "f1")}))
	wantCode(t, err, connect.CodeInvalidArgument, "list a file")
	_, err = c.ListDir(bg(), req(&filesystempb.ListDirRequest{Path: filepath.Join(dir, "nope")}))
	wantCode(t, err, connect.CodeNotFound, "list missing dir")

	empty := t.TempDir()
	res, err = c.ListDir(bg(), req(&filesystempb.ListDirRequest{Path: empty, Depth: 1}))
	if err != nil || len(res.Msg.GetEntries()) != 0 {
		t.Fatalf("list empty dir: %v, %v", res, err)
	}
}

func TestRemove(t *testing.T) {
	env := newEnv(t, currentUser(t).Name)
	env.eachCodec(t, func(t *testing.T, c filesystempbconnect.FilesystemClient) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "tree", "a", "b"), "x")
		writeFile(t, filepath.Join(dir, "f"), "x")
		if err := os.Symlink(filepath.Join(dir, "f"), filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"tree", "link"} {
			if _, err := c.Remove(bg(), req(&filesystempb.RemoveRequest{Path: filepath.Join(dir, p)})); err != nil {
				t.Fatalf("remove %s: %v", p, err)
			}
			if _, err := os.Lstat(filepath.Join(dir, p)); !os.IsNotExist(err) {
				t.Errorf("%s still there: %v", p, err)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "f")); err != nil {
			t.Errorf("removing a symlink removed its target: %v", err)
		}
		// A missing path is no error, as with E2B's envd.
		if _, err := c.Remove(bg(), req(&filesystempb.RemoveRequest{Path: filepath.Join(dir, "tree")})); err != nil {
			t.Errorf("remove a missing path: %v", err)
		}
	})
}

func TestBadInput(t *testing.T) {
	env := newEnv(t, currentUser(t).Name)
	c := env.clients["json"]
	for _, path := range []string{"", "a\x00b"} {
		_, err := c.Stat(bg(), req(&filesystempb.StatRequest{Path: path}))
		wantCode(t, err, connect.CodeInvalidArgument, "Stat "+path)
		_, err = c.MakeDir(bg(), req(&filesystempb.MakeDirRequest{Path: path}))
		wantCode(t, err, connect.CodeInvalidArgument, "MakeDir "+path)
		_, err = c.Move(bg(), req(&filesystempb.MoveRequest{Source: path, Destination: "/tmp/x"}))
		wantCode(t, err, connect.CodeInvalidArgument, "Move "+path)
		_, err = c.ListDir(bg(), req(&filesystempb.ListDirRequest{Path: path}))
		wantCode(t, err, connect.CodeInvalidArgument, "ListDir "+path)
		_, err = c.Remove(bg(), req(&filesystempb.RemoveRequest{Path: path}))
		wantCode(t, err, connect.CodeInvalidArgument, "Remove "+path)
		_, err = c.CreateWatcher(bg(), req(&filesystempb.CreateWatcherRequest{Path: path}))
		wantCode(t, err, connect.CodeInvalidArgument, "CreateWatcher "+path)
		st, err := c.WatchDir(bg(), req(&filesystempb.WatchDirRequest{Path: path}))
		if err == nil {
			st.Receive()
			err = st.Err()
			st.Close()
		}
		wantCode(t, err, connect.CodeInvalidArgument, "WatchDir "+path)
	}
	_, err := c.GetWatcherEvents(bg(), req(&filesystempb.GetWatcherEventsRequest{}))
	wantCode(t, err, connect.CodeNotFound, "GetWatcherEvents without id")
	_, err = c.RemoveWatcher(bg(), req(&filesystempb.RemoveWatcherRequest{}))
	wantCode(t, err, connect.CodeNotFound, "RemoveWatcher without id")

	// Users: a bad Basic header, an unknown user.
	r := req(&filesystempb.StatRequest{Path: "/"})
	r.Header().Set("Authorization", "Basic %%%")
	_, err = c.Stat(bg(), r)
	wantCode(t, err, connect.CodeInvalidArgument, "bad Basic auth")
	_, err = c.Stat(bg(), asUser(req(&filesystempb.StatRequest{Path: "/"}), "no-such-user-nestbox"))
	wantCode(t, err, connect.CodeUnauthenticated, "unknown user")
}

func TestPermissionDenied(t *testing.T) {
	testenv.RequireRoot(t)
	env := newEnv(t, "root")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		testenv.Missing(t, "cannot mount a read-only tmpfs: "+string(out))
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	c := env.clients["json"]
	_, err := c.MakeDir(bg(), req(&filesystempb.MakeDirRequest{Path: filepath.Join(dir, "x")}))
	wantCode(t, err, connect.CodePermissionDenied, "make dir on a read-only filesystem")
}
