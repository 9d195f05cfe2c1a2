package files

import (
	"compress/gzip"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"nestbox.dev/internal/envd/auth"
	"nestbox.dev/internal/envd/filesystem"
	"nestbox.dev/internal/errdefs"
)

// download streams a regular file: 200 application/octet-stream, gzip when
// the client accepts it, else with Range and conditional requests through
// http.ServeContent (which sends from the file without buffering it).
func (h *Handler) download(w http.ResponseWriter, r *http.Request) {
	q, u, err := h.begin(r, auth.OpRead)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if !q.hasPath || q.path == "" {
		h.writeError(w, r, errdefs.Invalid("missing path"))
		return
	}
	path, err := u.Resolve(q.path)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	// O_NONBLOCK: opening a FIFO must not hang the request; it is refused
	// below like any other file that is not regular.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		h.writeError(w, r, filesystem.OSError("open", path, err))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		h.writeError(w, r, filesystem.OSError("stat", path, err))
		return
	}
	if fi.IsDir() {
		h.writeError(w, r, errdefs.Invalid("path %s is a directory", path))
		return
	}
	if !fi.Mode().IsRegular() {
		h.writeError(w, r, errdefs.Invalid("path %s is not a regular file", path))
		return
	}
	useGzip, err := acceptsGzip(r.Header.Values("Accept-Encoding"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	// Ranges and conditional requests are answered on the identity
	// encoding: Accept-Encoding is only a preference.
	for _, k := range []string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if r.Header.Get(k) != "" {
			useGzip = false
		}
	}

	hdr := w.Header()
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("Content-Disposition", contentDisposition(filepath.Base(path)))
	hdr.Set("Vary", "Accept-Encoding")
	if !useGzip {
		http.ServeContent(w, r, "", fi.ModTime(), f)
		return
	}
	hdr.Set("Content-Encoding", "gzip")
	hdr.Set("Last-Modified", fi.ModTime().UTC().Format(http.TimeFormat))
	w.WriteHeader(http.StatusOK)
	// BestSpeed: the sandbox's CPU is the bottleneck, not the link.
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	_, err = io.Copy(zw, f)
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		// The status is sent: the client sees a truncated gzip stream,
		// which gzip's checksum lets it detect.
		h.log.Debug("gzip download ended early", "path", path, "err", err)
	}
}

// contentDisposition names the file for the client, quoting and, for
// non-ASCII names, RFC 2231-encoding it.
func contentDisposition(name string) string {
	if v := mime.FormatMediaType("inline", map[string]string{"filename": name}); v != "" {
		return v
	}
	return "inline"
}

// acceptsGzip reads Accept-Encoding: true when gzip is acceptable, false
// when only identity is. Neither is ErrNotAcceptable (406).
func acceptsGzip(values []string) (bool, error) {
	gzipQ, identityQ, starQ := -1.0, -1.0, -1.0
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(item), ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			if coding == "" {
				continue
			}
			q := 1.0
			for _, p := range strings.Split(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil && f >= 0 && f <= 1 {
						q = f
					}
				}
			}
			switch coding {
			case "gzip", "x-gzip":
				gzipQ = max(gzipQ, q)
			case "identity":
				identityQ = max(identityQ, q)
			case "*":
				starQ = max(starQ, q)
			}
		}
	}
	if gzipQ < 0 {
		gzipQ = max(starQ, 0)
	}
	identityListed := identityQ >= 0
	if !identityListed {
		// Identity is acceptable unless refused, by itself or by "*;q=0".
		identityQ = 1
		if starQ == 0 {
			identityQ = 0
		}
	}
	switch {
	case gzipQ > 0 && (!identityListed || gzipQ >= identityQ):
		return true, nil
	case identityQ > 0:
		return false, nil
	case gzipQ > 0:
		return true, nil
	}
	return false, errdefs.NotAcceptable("no acceptable content encoding: envd serves gzip and identity")
}
