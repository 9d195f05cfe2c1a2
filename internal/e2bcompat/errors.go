package e2bcompat

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"nestbox.dev/internal/errdefs"
)

// maxBody bounds request bodies.
const maxBody = 1 << 20

// errorBody is E2B's error shape: the SDK keys off the numeric code.
type errorBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type teamKey struct{}

// auth wraps h so that it runs only for a valid API key, with its team in
// the context.
func (a *API) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, team, err := a.cfg.Authenticate(r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		h(w, r.WithContext(context.WithValue(ctx, teamKey{}, team)))
	}
}

// record passes an audited action to Config.Record.
func (a *API) record(r *http.Request, action, resourceID string, err error) {
	if a.cfg.Record != nil {
		a.cfg.Record(r, action, resourceID, err)
	}
}

func team(r *http.Request) string {
	t, _ := r.Context().Value(teamKey{}).(string)
	return t
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// statusError is an answer with a status no error kind has.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// writeError answers err in E2B's shape with the status of its kind.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var se *statusError
	if errors.As(err, &se) {
		writeJSON(w, se.status, errorBody{Code: se.status, Message: se.msg})
		return
	}
	err = errdefs.FromConnect(err)
	status := errdefs.HTTPStatus(err)
	msg := err.Error()
	switch {
	case status == 499:
		return // the client went away
	case status == http.StatusInternalServerError:
		a.log.Error("E2B request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error"
	}
	writeJSON(w, status, errorBody{Code: status, Message: msg})
}

// decode reads a JSON body into v. Unknown fields are ignored, as E2B's
// API does: newer SDKs send fields older servers do not know. A missing
// body leaves v as it is when optional.
func decode(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return errdefs.Invalid("Content-Type %q: want application/json", ct)
	}
	err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(v)
	var (
		tooBig *http.MaxBytesError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF):
		if optional {
			return nil
		}
		return errdefs.Invalid("a JSON body is required")
	case errors.As(err, &tooBig):
		return errdefs.TooLarge("the body is larger than %d bytes", tooBig.Limit)
	case errors.As(err, &typ):
		return errdefs.Invalid("field %q: got a JSON %s, want %s", typ.Field, typ.Value, typ.Type)
	}
	return errdefs.Invalid("malformed JSON body: %v", err)
}

// notFound is the answer for a sandbox this team cannot use: unknown,
// another team's, or gone.
func notFound(id string) error { return errdefs.NotFound("sandbox %q not found", id) }

// WriteStatus answers status with msg in E2B's error shape: the control
// plane's router uses it for paths under E2B's prefixes that no route
// serves (404, 405), so that E2B's SDKs read a message, not an object.
func WriteStatus(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Code: status, Message: msg})
}
