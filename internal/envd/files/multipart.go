package files

import (
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"

	"nestbox.dev/internal/envd/identity"
	"nestbox.dev/internal/errdefs"
)

// uploadMultipart writes the parts named "file" of a multipart body, part
// by part, never holding one in memory. With the path parameter there must
// be one such part and path is its target; without it each part's filename
// is its target path (E2B's SDK sends several files that way). Other parts
// are skipped. Nothing is renamed into place before the whole body has been
// read: a bad part fails the whole upload.
func (h *Handler) uploadMultipart(u identity.User, q query, body *tracked, boundary string, md map[string]string) ([]uploaded, error) {
	if boundary == "" {
		return nil, errdefs.Invalid("multipart body without a boundary")
	}
	mr := multipart.NewReader(body, boundary)
	var all []*staged
	defer func() {
		for _, st := range all {
			st.discard()
		}
	}()
	seen := map[string]bool{}
	for {
		part, name, err := nextFilePart(mr)
		if err == io.EOF {
			break
		}
		if err != nil {
			if body.err != nil {
				return nil, bodyError(body.err)
			}
			return nil, errdefs.Invalid("invalid multipart body: %v", err)
		}
		target := name
		switch {
		case q.hasPath && len(all) > 0:
			return nil, errdefs.Invalid("the path parameter names one file, but the upload has several file parts; leave it out and give each part's target path as its filename")
		case q.hasPath:
			target = q.path
		case name == "":
			return nil, errdefs.Invalid("a file part has no filename; without the path parameter, each part's filename is its target path")
		}
		path, err := u.Resolve(target)
		if err != nil {
			return nil, err
		}
		if seen[path] {
			return nil, errdefs.Invalid("%s is uploaded twice in one request", path)
		}
		seen[path] = true
		st, err := h.stage(u, path, part, body, md)
		if err != nil {
			return nil, err
		}
		all = append(all, st)
	}
	if len(all) == 0 {
		return nil, errdefs.Invalid(`no part named "file" in the upload`)
	}
	out := make([]uploaded, 0, len(all))
	for _, st := range all {
		if err := st.commit(); err != nil {
			return nil, err
		}
		out = append(out, st.describe())
	}
	return out, nil
}

// nextFilePart returns the next part named "file" and the target path its
// filename carries, skipping other parts; io.EOF after the last.
func nextFilePart(mr *multipart.Reader) (*multipart.Part, string, error) {
	for {
		p, err := mr.NextPart()
		if err != nil {
			return nil, "", err
		}
		if p.FormName() == "file" {
			return p, partFileName(p.Header), nil
		}
	}
}

// partFileName returns the filename of a part's Content-Disposition with
// its directories: multipart.Part.FileName keeps only the last element, but
// E2B's SDK sends the whole target path there. The SDK's fetch (undici),
// like browsers, escapes '"', CR and LF in it as %22, %0D and %0A; they are
// decoded back.
func partFileName(h textproto.MIMEHeader) string {
	_, params, err := mime.ParseMediaType(h.Get("Content-Disposition"))
	if err != nil {
		return ""
	}
	name := params["filename"]
	if !strings.Contains(name, "%") {
		return name
	}
	return strings.NewReplacer("%22", `"`, "%0D", "\r", "%0d", "\r", "%0A", "\n", "%0a", "\n").Replace(name)
}
