package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"nestbox.dev"
)

// capsuleCopy is `nestbox capsule cp`: one file, streamed, in either
// direction.
func capsuleCopy(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "capsule cp", "[flags] SRC DST",
		"Copy a file into or out of a capsule. Exactly one of SRC and DST is ID:/absolute/path;\n"+
			"the other is a local path, or - for stdin or stdout. A local path that contains a colon\n"+
			"is written ./name:with:colons.")
	user := c.fs.String("user", "", "read and write the capsule's file as this user (default user)")
	pos, err := c.parse(args, 2, 2)
	if err != nil {
		return err
	}
	src, dst := parseCopyArg(pos[0]), parseCopyArg(pos[1])
	if err := checkCopyArgs(src, dst); err != nil {
		return c.usageError(err.Error())
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	var opts []nestbox.FileOption
	if *user != "" {
		opts = append(opts, nestbox.AsUser(*user))
	}
	if dst.capsule != "" {
		return upload(ctx, client.Capsule(dst.capsule), src.path, dst.path, opts, stdio)
	}
	return download(ctx, client.Capsule(src.capsule), src.path, dst.path, opts, stdio)
}

// copyArg is one side of cp: a path in a capsule, or a local path (capsule
// empty; "-" is stdin or stdout).
type copyArg struct{ capsule, path string }

// parseCopyArg reads ID:/path. A colon preceded by a slash belongs to a
// local path (./a:b), and so does one at the start.
func parseCopyArg(s string) copyArg {
	if id, p, ok := strings.Cut(s, ":"); ok && id != "" && !strings.Contains(id, "/") {
		return copyArg{capsule: id, path: p}
	}
	return copyArg{path: s}
}

func checkCopyArgs(src, dst copyArg) error {
	switch {
	case src.capsule != "" && dst.capsule != "":
		return errors.New("copy between capsules is not supported: one side must be local")
	case src.capsule == "" && dst.capsule == "":
		return errors.New("one side must be ID:/path in a capsule")
	}
	for _, a := range []copyArg{src, dst} {
		if a.capsule != "" && !path.IsAbs(a.path) {
			return fmt.Errorf("capsule path %q is not absolute", a.path)
		}
		if a.capsule == "" && a.path == "" {
			return errors.New("empty local path")
		}
	}
	return nil
}

// upload sends a local file (or stdin) to a capsule. A destination that
// ends in "/" or is a directory receives the file under its own name.
func upload(ctx context.Context, h *nestbox.Handle, local, remote string, opts []nestbox.FileOption, stdio IO) error {
	var (
		r    = stdio.stdin()
		size = int64(-1)
		name string
	)
	if local != "-" {
		f, err := os.Open(local)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return fmt.Errorf("%s is a directory: cp copies one file", local)
		}
		r, size, name = f, fi.Size(), filepath.Base(local)
	}
	intoDir := strings.HasSuffix(remote, "/")
	if !intoDir {
		e, err := h.Stat(ctx, remote, opts...)
		switch {
		case err == nil:
			intoDir = e.Type == nestbox.EntryDir
		case !errors.Is(err, nestbox.ErrNotFound):
			return err
		}
	}
	if intoDir {
		if name == "" {
			return fmt.Errorf("%s is a directory: name the file to write stdin to", remote)
		}
		remote = path.Join(remote, name)
	}
	if p := newProgress(stdio, "upload "+remote, size); p != nil {
		r = p.reader(r)
		defer p.finish()
		opts = append(opts, nestbox.WithSize(size))
	}
	_, err := h.WriteFile(ctx, remote, r, opts...)
	return err
}

// download writes a capsule's file to a local file (or stdout). A local
// directory receives the file under its own name; a failed download leaves
// no partial file behind.
func download(ctx context.Context, h *nestbox.Handle, remote, local string, opts []nestbox.FileOption, stdio IO) (err error) {
	body, err := h.ReadFile(ctx, remote, opts...)
	if err != nil {
		return err
	}
	defer body.Close()
	var r io.Reader = body
	if local == "-" {
		_, err = io.Copy(stdio.Stdout, r)
		return err
	}
	if fi, err := os.Stat(local); err == nil && fi.IsDir() {
		local = filepath.Join(local, path.Base(remote))
	}
	if p := newProgress(stdio, "download "+local, body.Size()); p != nil {
		r = p.reader(r)
		defer p.finish()
	}
	f, err := os.Create(local)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(local)
		}
	}()
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
