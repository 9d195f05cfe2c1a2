package nestbox

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
)

// FileOption configures the file calls.
type FileOption func(*fileOptions)

type fileOptions struct {
	user string
	size int64 // -1: unknown
}

// AsUser acts on the file as this user (default "user"), who also owns
// the files and directories that WriteFile and MakeDir create.
func AsUser(user string) FileOption { return func(o *fileOptions) { o.user = user } }

// WithSize declares how many bytes WriteFile's reader yields, so that the
// upload is sent with a Content-Length. WriteFile finds the length itself
// for *os.File, *bytes.Reader, *bytes.Buffer and *strings.Reader.
func WithSize(n int64) FileOption { return func(o *fileOptions) { o.size = n } }

func fileQuery(path string, opts []FileOption) (url.Values, fileOptions) {
	o := fileOptions{size: -1}
	for _, f := range opts {
		f(&o)
	}
	q := url.Values{"path": {path}}
	if o.user != "" {
		q.Set("user", o.user)
	}
	return q, o
}

// FileReader is the content of a file being downloaded. The caller must
// close it.
type FileReader struct {
	body io.ReadCloser
	size int64
}

// Read reads the file's content.
func (r *FileReader) Read(p []byte) (int, error) { return r.body.Read(p) }

// Close ends the download.
func (r *FileReader) Close() error { return r.body.Close() }

// Size returns the file's length, or -1 if the server did not say.
func (r *FileReader) Size() int64 { return r.size }

// ReadFile opens the file at the absolute path for reading. The content is
// streamed as the caller reads it.
func (h *Handle) ReadFile(ctx context.Context, path string, opts ...FileOption) (*FileReader, error) {
	q, _ := fileQuery(path, opts)
	req, err := h.c.newRequest(ctx, http.MethodGet, pathf("/v1/capsules/%s/files", h.id), q, nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.c.send(req)
	if err != nil {
		return nil, err
	}
	return &FileReader{body: resp.Body, size: resp.ContentLength}, nil
}

// WriteFile creates or replaces the file at the absolute path with what r
// yields and returns the file's new entry.
// r is streamed into the request as it is read, once; it is not closed.
func (h *Handle) WriteFile(ctx context.Context, path string, r io.Reader, opts ...FileOption) (Entry, error) {
	var e Entry
	q, o := fileQuery(path, opts)
	size := o.size
	if size < 0 {
		size = readerSize(r)
	}
	// The transport closes a request body that is an io.Closer; r belongs
	// to the caller, so it is hidden behind NopCloser.
	var body io.Reader = io.NopCloser(r)
	if size == 0 {
		body = http.NoBody
	}
	req, err := h.c.newRequest(ctx, http.MethodPut, pathf("/v1/capsules/%s/files", h.id), q, body)
	if err != nil {
		return e, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if size > 0 {
		req.ContentLength = size
	}
	resp, err := h.c.send(req)
	if err != nil {
		return e, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		return e, fmt.Errorf("write file %s: decode answer: %w", path, err)
	}
	return e, nil
}

// readerSize returns how many bytes r will yield, or -1 if that is not
// known without reading it.
func readerSize(r io.Reader) int64 {
	switch v := r.(type) {
	case interface{ Len() int }: // bytes.Reader, bytes.Buffer, strings.Reader
		return int64(v.Len())
	case interface {
		Stat() (fs.FileInfo, error)
		io.Seeker
	}: // os.File
		fi, err := v.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return -1
		}
		off, err := v.Seek(0, io.SeekCurrent)
		if err != nil || off > fi.Size() {
			return -1
		}
		return fi.Size() - off
	}
	return -1
}

// ListDir lists the directory at the absolute path, depth levels deep
// (zero means 1: its direct entries).
func (h *Handle) ListDir(ctx context.Context, path string, depth int, opts ...FileOption) ([]Entry, error) {
	q, _ := fileQuery(path, opts)
	if depth > 0 {
		q.Set("depth", strconv.Itoa(depth))
	}
	var l EntryList
	err := h.c.do(ctx, http.MethodGet, pathf("/v1/capsules/%s/files/list", h.id), q, nil, &l)
	return l.Entries, err
}

// Stat describes the file or directory at the absolute path.
func (h *Handle) Stat(ctx context.Context, path string, opts ...FileOption) (Entry, error) {
	var e Entry
	q, _ := fileQuery(path, opts)
	err := h.c.do(ctx, http.MethodGet, pathf("/v1/capsules/%s/files/stat", h.id), q, nil, &e)
	return e, err
}

// MakeDir creates the directory at the absolute path and its missing
// parents.
func (h *Handle) MakeDir(ctx context.Context, path string, opts ...FileOption) (Entry, error) {
	var e Entry
	q, _ := fileQuery(path, opts)
	q.Del("path") // it goes in the body
	err := h.c.do(ctx, http.MethodPost, pathf("/v1/capsules/%s/files/mkdir", h.id), q, MakeDirRequest{Path: path}, &e)
	return e, err
}

// Remove deletes the file or directory at the absolute path.
func (h *Handle) Remove(ctx context.Context, path string, opts ...FileOption) error {
	q, _ := fileQuery(path, opts)
	return h.c.do(ctx, http.MethodDelete, pathf("/v1/capsules/%s/files", h.id), q, nil, nil)
}
