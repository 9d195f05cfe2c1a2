package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/lifecycle"
)

// writeJSON writes v with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// writeError writes err as {"error":{"code","message"}} with the status of
// its kind. Internal errors are logged and their text is not shown.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	err = errdefs.FromConnect(err)
	status := statusOf(err)
	code := errorCode(err)
	if code == "no_capacity" {
		// Nothing was created; capacity may free up in seconds.
		w.Header().Set("Retry-After", "5")
	}
	msg := err.Error()
	if status == http.StatusInternalServerError {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error"
	}
	if status == 499 {
		return // the client went away
	}
	writeJSON(w, status, nestbox.ErrorBody{Error: nestbox.ErrorDetail{Code: code, Message: msg}})
}

// errorCode is the stable code of err in the API's answers (and audit
// entries): its kind's, or one of the lifecycle's own.
func errorCode(err error) string {
	err = errdefs.FromConnect(err)
	switch {
	case errors.Is(err, lifecycle.ErrPaused):
		// A stable code of its own: the client may resume and retry.
		return "capsule_paused"
	case errors.Is(err, lifecycle.ErrNoCapacity):
		return "no_capacity"
	}
	return errdefs.Code(err)
}

// decodeJSON reads a JSON request body into v strictly: a size limit,
// no unknown fields, exactly one value. A missing body is an error unless
// optional.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return errdefs.Invalid("Content-Type %q: want application/json", ct)
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) {
		if optional {
			return nil
		}
		return errdefs.Invalid("a JSON body is required")
	}
	if err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return jsonError(err)
		}
		return errdefs.Invalid("the body has more than one JSON value")
	}
	return nil
}

// jsonError turns a decoding error into a message that names the problem.
func jsonError(err error) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		tooBig *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooBig):
		return errdefs.TooLarge("the body is larger than %d bytes", tooBig.Limit)
	case errors.As(err, &syntax):
		return errdefs.Invalid("malformed JSON at byte %d: %v", syntax.Offset, err)
	case errors.As(err, &typ):
		return errdefs.Invalid("field %q: got a JSON %s, want %s", typ.Field, typ.Value, typ.Type)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errdefs.Invalid("malformed JSON: the body ends early")
	}
	// Unknown fields land here: encoding/json has no typed error for
	// them, and its message names the field.
	return errdefs.Invalid("invalid body: %v", err)
}

// statusOf is the HTTP status writeError would answer err with.
func statusOf(err error) int { return errdefs.HTTPStatus(errdefs.FromConnect(err)) }
