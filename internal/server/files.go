package server

import (
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"

	"nestbox.dev"
	"nestbox.dev/internal/envdclient"
	"nestbox.dev/internal/errdefs"
)

// maxListDepth bounds ?depth of a directory listing.
const maxListDepth = 32

// cleanPath checks a path in a capsule: absolute, no NUL; it returns it
// cleaned.
func cleanPath(p string) (string, error) {
	if p == "" {
		return "", errdefs.Invalid("path is required")
	}
	if !strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		return "", errdefs.Invalid("path %q: want an absolute path", p)
	}
	return path.Clean(p), nil
}

// fileOp is a file route's work on a checked path of a running capsule,
// acting as the Unix user of ?user.
type fileOp func(w http.ResponseWriter, r *http.Request, cl *envdclient.Client, path, user string) error

// fileRoute resolves ?path and the capsule's envd for op and writes op's
// error, if any.
func (s *Server) fileRoute(op fileOp) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := cleanPath(r.URL.Query().Get("path"))
		if err == nil {
			var cl *envdclient.Client
			if cl, err = s.capsuleEnvd(r); err == nil {
				err = op(w, r, cl, p, r.URL.Query().Get("user"))
			}
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	}
}

func (s *Server) download(w http.ResponseWriter, r *http.Request, cl *envdclient.Client, p, user string) error {
	body, size, err := cl.Download(r.Context(), p, user)
	if err != nil {
		return err
	}
	defer body.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	if size >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, body); err != nil {
		// Too late for an error body: the client sees a short read.
		s.log.Debug("download cut short", "path", p, "err", err)
	}
	return nil
}

func (s *Server) upload(w http.ResponseWriter, r *http.Request, cl *envdclient.Client, p, user string) error {
	e, err := cl.Upload(r.Context(), p, user, r.Body)
	if err == nil {
		writeJSON(w, http.StatusOK, e)
	}
	return err
}

func (s *Server) removeFile(w http.ResponseWriter, r *http.Request, cl *envdclient.Client, p, user string) error {
	err := cl.Remove(r.Context(), p, user)
	if err == nil {
		w.WriteHeader(http.StatusNoContent)
	}
	return err
}

func (s *Server) listDir(w http.ResponseWriter, r *http.Request, cl *envdclient.Client, p, user string) error {
	depth := 1
	if v := r.URL.Query().Get("depth"); v != "" {
		var err error
		if depth, err = strconv.Atoi(v); err != nil || depth < 1 || depth > maxListDepth {
			return errdefs.Invalid("depth %q: want 1 to %d", v, maxListDepth)
		}
	}
	es, err := cl.ListDir(r.Context(), p, user, depth)
	if err != nil {
		return err
	}
	if es == nil {
		es = []nestbox.Entry{}
	}
	writeJSON(w, http.StatusOK, nestbox.EntryList{Entries: es})
	return nil
}

func (s *Server) stat(w http.ResponseWriter, r *http.Request, cl *envdclient.Client, p, user string) error {
	e, err := cl.Stat(r.Context(), p, user)
	if err == nil {
		writeJSON(w, http.StatusOK, e)
	}
	return err
}

func (s *Server) makeDir(w http.ResponseWriter, r *http.Request) {
	var req nestbox.MakeDirRequest
	err := s.decodeJSON(w, r, &req, false)
	if err == nil {
		req.Path, err = cleanPath(req.Path)
	}
	var cl *envdclient.Client
	if err == nil {
		cl, err = s.capsuleEnvd(r)
	}
	var e nestbox.Entry
	if err == nil {
		e, err = cl.MakeDir(r.Context(), req.Path, r.URL.Query().Get("user"))
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}
