package files

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"nestbox.dev/internal/envd/auth"
	"nestbox.dev/internal/envd/filesystem"
	"nestbox.dev/internal/envd/identity"
	"nestbox.dev/internal/errdefs"
)

// uploaded describes one uploaded file in the answer. E2B's SDK reads name,
// type and path; metadata is what the file carries after the upload.
type uploaded struct {
	Name     string            `json:"name"`
	Type     string            `json:"type"`
	Path     string            `json:"path"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// upload writes the files of a multipart/form-data or
// application/octet-stream body, optionally gzip-encoded. Each file is
// streamed into a temporary file next to its target and renamed over the
// target only when the whole request has succeeded, so a failed upload
// (bad gzip, body too large, disk full) leaves no partial file behind.
// Parent directories are created, and files and directories belong to the
// request's user. A new file gets mode 0644; an overwritten one keeps its
// permission bits but gets a new inode (hard links to it keep the old
// content). A symlink at the target is written through. Parent directories
// created for a failed upload stay.
func (h *Handler) upload(w http.ResponseWriter, r *http.Request) {
	q, u, err := h.begin(r, auth.OpWrite)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	files, err := h.uploadFiles(w, r, q, u)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, files)
}

func (h *Handler) uploadFiles(w http.ResponseWriter, r *http.Request, q query, u identity.User) ([]uploaded, error) {
	md, err := metadataFromHeader(r.Header)
	if err != nil {
		return nil, err
	}
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil && mediaType == "" {
		return nil, errdefs.Invalid("unsupported content type %q: send multipart/form-data or application/octet-stream", r.Header.Get("Content-Type"))
	}
	raw := mediaType == "application/octet-stream"
	if !raw && !strings.HasPrefix(mediaType, "multipart/") {
		return nil, errdefs.Invalid("unsupported content type %q: send multipart/form-data or application/octet-stream", mediaType)
	}
	if raw && !q.hasPath {
		return nil, errdefs.Invalid("the path parameter is required for an application/octet-stream upload")
	}
	if h.maxUpload > 0 {
		if r.ContentLength > h.maxUpload {
			return nil, errdefs.TooLarge("upload of %d bytes is larger than the limit of %d bytes", r.ContentLength, h.maxUpload)
		}
		r.Body = http.MaxBytesReader(w, r.Body, h.maxUpload)
	}
	body, err := h.decodedBody(r)
	if err != nil {
		return nil, err
	}
	if raw {
		return h.uploadRaw(u, q, body, md)
	}
	return h.uploadMultipart(u, q, body, params["boundary"], md)
}

func (h *Handler) uploadRaw(u identity.User, q query, body *tracked, md map[string]string) ([]uploaded, error) {
	target, err := u.Resolve(q.path)
	if err != nil {
		return nil, err
	}
	st, err := h.stage(u, target, body, body, md)
	if err != nil {
		return nil, err
	}
	defer st.discard()
	if err := st.commit(); err != nil {
		return nil, err
	}
	return []uploaded{st.describe()}, nil
}

// metadataFromHeader collects X-Metadata-<key>: <value> headers, keys
// lower-cased, and checks them against the metadata limits.
func metadataFromHeader(h http.Header) (map[string]string, error) {
	const prefix = "x-metadata-"
	var md map[string]string
	for name, values := range h {
		if len(name) <= len(prefix) || !strings.EqualFold(name[:len(prefix)], prefix) || len(values) == 0 {
			continue
		}
		key := strings.ToLower(name[len(prefix):])
		if _, dup := md[key]; dup || len(values) > 1 {
			return nil, errdefs.Invalid("metadata key %q is given more than once", key)
		}
		if md == nil {
			md = map[string]string{}
		}
		md[key] = values[0]
	}
	if err := filesystem.ValidateMetadata(md); err != nil {
		return nil, err
	}
	return md, nil
}

// tracked remembers the first error reading the request body, so that a
// failed copy can tell a bad body (400, 413) from a failed write (507, 500).
type tracked struct {
	r   io.Reader
	err error
}

func (t *tracked) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}

// decodedBody returns the request body with its Content-Encoding undone.
func (h *Handler) decodedBody(r *http.Request) (*tracked, error) {
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return &tracked{r: r.Body}, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, bodyError(err)
		}
		var rd io.Reader = zr
		if h.maxUpload > 0 {
			// A small gzip body can decompress to far more.
			rd = &capReader{r: zr, left: h.maxUpload, limit: h.maxUpload}
		}
		return &tracked{r: rd}, nil
	default:
		return nil, errdefs.Invalid("unsupported Content-Encoding %q: envd accepts gzip", enc)
	}
}

// capReader fails with ErrTooLarge once more than limit bytes were read.
type capReader struct {
	r     io.Reader
	left  int64
	limit int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, errdefs.TooLarge("upload decompresses to more than the limit of %d bytes", c.limit)
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, errdefs.TooLarge("upload decompresses to more than the limit of %d bytes", c.limit)
	}
	return n, err
}

// bodyError gives an error from reading the request body its kind.
func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	var corrupt flate.CorruptInputError
	switch {
	case errors.As(err, &tooBig):
		return errdefs.TooLarge("upload is larger than the limit of %d bytes", tooBig.Limit)
	case errors.Is(err, errdefs.ErrTooLarge):
		return err
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum), errors.As(err, &corrupt), errors.Is(err, io.EOF):
		return errdefs.Invalid("invalid gzip body: %v", err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errdefs.Invalid("request body ended early: %v", err)
	}
	return errdefs.Invalid("read request body: %v", err)
}

// staged is an uploaded file written to a temporary file next to its
// target, waiting to be renamed over it.
type staged struct {
	tmp    string
	target string // where the file goes: path, or what a symlink at path points to
	path   string // the path the client named, resolved
	size   int64
	info   fs.FileInfo // of the temporary file, to recognise it
	done   bool
}

// stage writes src into a temporary file for the upload to path. body is
// the request body src reads from, to tell its errors from write errors.
func (h *Handler) stage(u identity.User, path string, src io.Reader, body *tracked, md map[string]string) (*staged, error) {
	target := path
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		// Write through the link, as open(2) would. A dangling link is
		// replaced instead.
		if t, err := filepath.EvalSymlinks(path); err == nil {
			target = t
		}
	}
	dir := filepath.Dir(target)
	if err := u.MkdirAll(dir); err != nil {
		if errors.Is(err, syscall.ENOTDIR) {
			return nil, errdefs.Invalid("upload to %s: a parent is not a directory", path)
		}
		return nil, filesystem.OSError("make parent dirs of", path, err)
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, errdefs.Invalid("upload to %s: a parent is not a directory", path)
	}
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(target); err == nil {
		if fi.IsDir() {
			return nil, errdefs.Invalid("path %s is a directory", path)
		}
		mode = fi.Mode().Perm()
	}
	f, err := os.CreateTemp(dir, filesystem.UploadTempPrefix+"*")
	if err != nil {
		return nil, filesystem.OSError("upload to", path, err)
	}
	st := &staged{tmp: f.Name(), target: target, path: path}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(st.tmp)
		}
	}()
	if err := u.Chown(st.tmp); err != nil {
		return nil, filesystem.OSError("chown", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		return nil, filesystem.OSError("chmod", path, err)
	}
	if st.size, err = copyBody(f, src, body, path); err != nil {
		return nil, err
	}
	if len(md) > 0 {
		if err := filesystem.SetMetadata(st.tmp, md); err != nil {
			if !errors.Is(err, syscall.ENOTSUP) {
				return nil, err
			}
			// As E2B's envd does: keep the file; the answer shows no
			// metadata, so the client can tell.
			h.log.Warn("metadata not stored: the filesystem has no extended attributes", "path", path)
		}
	}
	if st.info, err = f.Stat(); err != nil {
		return nil, filesystem.OSError("stat", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, filesystem.OSError("write", path, err)
	}
	ok = true
	return st, nil
}

// copyBody copies src into f. Multipart parts arrive a few KB at a time;
// the buffered writer turns them into large writes.
func copyBody(f *os.File, src io.Reader, body *tracked, path string) (int64, error) {
	bw := bufio.NewWriterSize(f, 256<<10)
	buf := make([]byte, 64<<10)
	var n int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			if _, err := bw.Write(buf[:nr]); err != nil {
				return n, filesystem.OSError("write", path, err)
			}
			n += int64(nr)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if body.err != nil {
				return n, bodyError(body.err)
			}
			return n, errdefs.Invalid("invalid multipart body: %v", rerr)
		}
	}
	if err := bw.Flush(); err != nil {
		return n, filesystem.OSError("write", path, err)
	}
	return n, nil
}

// commit renames the staged file over its target.
func (s *staged) commit() error {
	// Opened by its private name before the rename, to touch it after.
	// The directory may be writable by the sandbox user, who could swap
	// the name for a link to another file: O_NOFOLLOW and the inode check
	// make sure only our own file is touched.
	f, err := os.OpenFile(s.tmp, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err == nil {
		defer f.Close()
		if fi, err := f.Stat(); err != nil || !os.SameFile(fi, s.info) {
			f = nil
		}
	} else {
		f = nil
	}
	if err := os.Rename(s.tmp, s.target); err != nil {
		return filesystem.OSError("upload to", s.path, err)
	}
	s.done = true
	if f != nil {
		// Truncating to its own size changes nothing but makes inotify
		// report a write of the target: E2B's envd writes in place, and
		// watchers (E2B's SDK tests among them) wait for that event.
		_ = f.Truncate(s.size)
	}
	return nil
}

// discard removes the temporary file of an upload that was not committed.
func (s *staged) discard() {
	if !s.done {
		os.Remove(s.tmp)
	}
}

func (s *staged) describe() uploaded {
	md, _ := filesystem.Metadata(s.target)
	return uploaded{Name: filepath.Base(s.path), Type: "file", Path: s.path, Metadata: md}
}
