package envdclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
)

// filesURL is envd's /files for path as user; "" leaves envd's default
// user.
func (c *Client) filesURL(p, user string) string {
	q := url.Values{"path": {p}}
	if user != "" {
		q.Set("username", user)
	}
	return c.base + "/files?" + q.Encode()
}

// Download opens the regular file path as user and returns its content as
// it streams from envd, with its size, or -1 when envd does not say. ctx
// covers the whole download: cancelling it cuts the body. The caller must
// close the body. A directory is ErrInvalid, a missing file ErrNotFound.
func (c *Client) Download(ctx context.Context, path, user string) (io.ReadCloser, int64, error) {
	op := "download " + path
	if path == "" {
		return nil, 0, fmt.Errorf("%s: %w", op, errdefs.Invalid("empty path"))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.filesURL(path, user), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", op, err)
	}
	// The bytes as they are on disk: gzip would cost the capsule's CPU
	// and hide the size.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, transportError(op, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, 0, statusError(op, resp)
	}
	return resp.Body, resp.ContentLength, nil
}

// Upload writes what r yields to the file path as user, creating missing
// parent directories, and returns the new file's entry. The content streams
// to envd as a multipart body and is never held in memory whole; envd puts
// the file in place only once all of it has arrived, so a failed upload
// leaves the old file (or none) behind.
func (c *Client) Upload(ctx context.Context, path, user string, r io.Reader) (nestbox.Entry, error) {
	op := "upload " + path
	if path == "" {
		return nestbox.Entry{}, fmt.Errorf("%s: %w", op, errdefs.Invalid("empty path"))
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	// written is the writer goroutine's outcome; readErr is set when r
	// failed, so that the cause is not taken for a transport error.
	var readErr error
	written := make(chan struct{})
	go func() {
		defer close(written)
		part, err := mw.CreateFormFile("file", baseName(path))
		if err == nil {
			err = copySource(part, r, &readErr)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err) // nil: EOF for the reader
	}()
	// Whatever happens to the request, the writer goroutine must end.
	defer func() {
		pr.CloseWithError(errors.New("upload finished"))
		<-written
	}()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.filesURL(path, user), pr)
	if err != nil {
		return nestbox.Entry{}, fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.http.Do(req)
	if err != nil {
		pr.CloseWithError(err)
		<-written
		if readErr != nil {
			return nestbox.Entry{}, fmt.Errorf("%s: read source: %w", op, readErr)
		}
		return nestbox.Entry{}, transportError(op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nestbox.Entry{}, statusError(op, resp)
	}
	var files []struct {
		Name string `json:"name"`
		Path string `json:"path"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxErrorBody)).Decode(&files); err != nil || len(files) != 1 {
		return nestbox.Entry{}, fmt.Errorf("%s: unexpected answer from envd (%d files, %v)", op, len(files), err)
	}
	// The answer names the file only; its size, mode and owner come from a
	// stat. Should that fail (the file is gone again), the upload still
	// succeeded and the name is all there is to tell.
	if e, err := c.Stat(ctx, files[0].Path, user); err == nil {
		return e, nil
	}
	return nestbox.Entry{Name: files[0].Name, Path: files[0].Path, Type: nestbox.EntryFile}, nil
}

// copySource copies r into w, noting in readErr when r is what failed.
func copySource(w io.Writer, r io.Reader, readErr *error) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			*readErr = err
			return err
		}
	}
}

// baseName names the multipart part. envd writes to the path parameter and
// ignores it, but a part needs a name.
func baseName(p string) string {
	if b := path.Base(p); b != "/" && b != "." {
		return b
	}
	return "file"
}
