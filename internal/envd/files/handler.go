// Package files is envd's /files endpoint: streaming download (GET) and
// upload (POST, multipart/form-data or a raw body, optionally gzip) of
// sandbox files, acting as a sandbox user and authorized by the access
// token or a v1 URL signature, as E2B's SDKs expect. Imported by
// internal/envd.
package files

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"nestbox.dev/internal/envd/auth"
	"nestbox.dev/internal/envd/identity"
	"nestbox.dev/internal/envd/settings"
	"nestbox.dev/internal/errdefs"
)

// Config configures a Handler.
type Config struct {
	Settings *settings.Settings // required
	Logger   *slog.Logger       // nil discards logs
	// MaxUploadBytes caps one upload request body; zero means no cap
	// beyond the disk. For a gzip body it caps the body as sent and the
	// bytes it decompresses to.
	MaxUploadBytes int64
	// Now tells the time signatures expire by; nil means time.Now.
	Now func() time.Time
}

// Handler serves GET and POST /files; other methods are 405. It is safe for
// concurrent use.
type Handler struct {
	settings  *settings.Settings
	log       *slog.Logger
	maxUpload int64
	now       func() time.Time
}

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Settings == nil {
		return nil, errors.New("files: settings are required")
	}
	if cfg.MaxUploadBytes < 0 {
		return nil, errors.New("files: MaxUploadBytes is negative")
	}
	h := &Handler{settings: cfg.Settings, log: cfg.Logger, maxUpload: cfg.MaxUploadBytes, now: cfg.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		h.download(w, r)
	case http.MethodPost:
		h.upload(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		writeStatus(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed on /files")
	}
}

// query is what a /files request names, raw: signatures cover the path and
// username as the client sent them, before resolution.
type query struct {
	path       string
	hasPath    bool
	username   string // "" when absent
	signature  string
	expiration string // signature_expiration, "" when absent
}

// parseQuery reads a /files query string. A parameter that matters for
// authorization may appear once: were it repeated, the signature check and
// a proxy in front of envd could each read a different one.
func parseQuery(raw string) (query, error) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return query{}, errdefs.Invalid("invalid query string: %v", err)
	}
	for _, k := range []string{"path", "username", "signature", "signature_expiration"} {
		if len(v[k]) > 1 {
			return query{}, errdefs.Invalid("query parameter %q is repeated", k)
		}
	}
	q := query{
		path:       v.Get("path"),
		username:   v.Get("username"),
		signature:  v.Get("signature"),
		expiration: v.Get("signature_expiration"),
	}
	_, q.hasPath = v["path"]
	return q, nil
}

// authorize lets a request through when no access token is set, when it
// carries the token in X-Access-Token, or when it carries a valid signature
// of its path, op and username by that token. Errors are 401s.
func (h *Handler) authorize(r *http.Request, q query, op string) error {
	token := h.settings.AccessToken()
	if token == "" {
		return nil
	}
	if got := r.Header.Get("X-Access-Token"); got != "" && auth.CheckToken(got, token) {
		return nil
	}
	if q.signature == "" {
		return errdefs.Unauthenticated("unauthorized access: give a valid X-Access-Token header or a signature")
	}
	// A user name with a colon could shift the fields of the signed string
	// ("path:op:user:token"); no Linux user name has one.
	if strings.ContainsRune(q.username, ':') {
		return errdefs.Unauthenticated("invalid username %q", q.username)
	}
	err := auth.CheckSignature(q.signature, q.path, op, q.username, token, q.expiration, h.now())
	if err != nil && !errors.Is(err, errdefs.ErrUnauthenticated) {
		// A malformed expiration is as unauthorized as a wrong signature.
		return errdefs.Unauthenticated("%s", err.Error())
	}
	return err
}

// user resolves who a request acts as: the username parameter, else the
// Basic auth user, else the default user. An unknown user is a 401.
func (h *Handler) user(r *http.Request, q query) (identity.User, error) {
	name := q.username
	if name == "" {
		n, ok, err := identity.FromBasicAuth(r.Header.Get("Authorization"))
		if err != nil {
			return identity.User{}, err
		}
		if ok {
			name = n
		}
	}
	if name == "" {
		name = h.settings.DefaultUser()
	}
	if strings.ContainsAny(name, ":\x00\n") {
		return identity.User{}, errdefs.Unauthenticated("invalid username %q", name)
	}
	return identity.Lookup(name)
}

// begin does what every /files request starts with: parse, authorize,
// resolve the user.
func (h *Handler) begin(r *http.Request, op string) (query, identity.User, error) {
	q, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return query{}, identity.User{}, err
	}
	if err := h.authorize(r, q, op); err != nil {
		return query{}, identity.User{}, err
	}
	u, err := h.user(r, q)
	if err != nil {
		return query{}, identity.User{}, err
	}
	return q, u, nil
}
