package nestbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"
)

// The kinds of errors. An *APIError matches one of them with errors.Is
// according to its code; the SDK also uses ErrInvalid for arguments it
// rejects before calling the API.
var (
	// ErrNotFound: not_found.
	ErrNotFound = errors.New("not found")
	// ErrConflict: conflict, already_exists.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: invalid_argument, too_large.
	ErrInvalid = errors.New("invalid argument")
	// ErrUnavailable: unavailable.
	ErrUnavailable = errors.New("unavailable")
	// ErrUnauthenticated: unauthenticated (a missing or wrong API key).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermission: permission_denied.
	ErrPermission = errors.New("permission denied")
	// ErrExhausted: resource_exhausted, no_space (a quota, the host's
	// capacity or a capsule's disk is full).
	ErrExhausted = errors.New("resource exhausted")
)

// codeKinds maps the API's error codes onto the kinds; the codes that map
// to no kind are there with nil.
var codeKinds = map[string]error{
	"deadline_exceeded":  nil,
	"canceled":           nil,
	"unimplemented":      nil,
	"internal":           nil,
	"not_found":          ErrNotFound,
	"conflict":           ErrConflict,
	"already_exists":     ErrConflict,
	"invalid_argument":   ErrInvalid,
	"too_large":          ErrInvalid,
	"unavailable":        ErrUnavailable,
	"unauthenticated":    ErrUnauthenticated,
	"permission_denied":  ErrPermission,
	"resource_exhausted": ErrExhausted,
	"no_space":           ErrExhausted,
}

// statusCodes gives the code of an answer whose body carries none.
var statusCodes = map[int]string{
	http.StatusBadRequest:            "invalid_argument",
	http.StatusUnauthorized:          "unauthenticated",
	http.StatusForbidden:             "permission_denied",
	http.StatusNotFound:              "not_found",
	http.StatusConflict:              "conflict",
	http.StatusRequestEntityTooLarge: "too_large",
	http.StatusTooManyRequests:       "resource_exhausted",
	http.StatusInsufficientStorage:   "no_space",
	http.StatusNotImplemented:        "unimplemented",
	http.StatusBadGateway:            "unavailable",
	http.StatusServiceUnavailable:    "unavailable",
	http.StatusGatewayTimeout:        "deadline_exceeded",
	http.StatusInternalServerError:   "internal",
}

// APIError is a non-2xx answer of the API, or an error that the server
// reported inside an exec or terminal stream.
type APIError struct {
	// StatusCode is the HTTP status; 0 for an error inside a stream.
	StatusCode int
	// Code is the machine-readable code of the error body
	// ("not_found", ...). When the body carried none (a proxy's HTML page,
	// say), it is the code that matches StatusCode, or "" if none does.
	Code string
	// Message is the server's explanation, or the start of a body that was
	// not JSON.
	Message string
}

// Error returns the message followed by the code, e.g.
// "capsule abc not found (not_found)".
func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = strings.ToLower(http.StatusText(e.StatusCode))
	}
	if msg == "" {
		msg = fmt.Sprintf("HTTP status %d", e.StatusCode)
	}
	if e.Code == "" {
		return msg
	}
	return msg + " (" + e.Code + ")"
}

// Is reports whether the error's code belongs to target, one of the kinds
// (ErrNotFound, ErrConflict, ...). A code this SDK does not know is judged
// by the HTTP status.
func (e *APIError) Is(target error) bool {
	kind, known := codeKinds[e.Code]
	if !known {
		kind = codeKinds[statusCodes[e.StatusCode]]
	}
	return kind != nil && kind == target
}

// decodeError reads an error answer. It never fails: a body that is not the
// API's JSON still yields an *APIError with the status.
func decodeError(resp *http.Response) *APIError {
	e := &APIError{StatusCode: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body ErrorBody
	if json.Unmarshal(b, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
		return e
	}
	e.Code = statusCodes[resp.StatusCode]
	if s := strings.TrimSpace(string(b)); s != "" && utf8.ValidString(s) && !strings.HasPrefix(s, "<") {
		if len(s) > 200 {
			s = s[:200] + "..."
		}
		e.Message = s
	}
	return e
}

// CapsuleError reports that a capsule reached a final status other than
// the one waited for, such as a capsule that failed to start.
type CapsuleError struct {
	// Capsule is the capsule as it was last seen.
	Capsule Capsule
	// Want is the status that was waited for.
	Want Status
}

func (e *CapsuleError) Error() string {
	c := e.Capsule
	if c.Status == StatusError && c.Error != "" {
		return fmt.Sprintf("capsule %s failed: %s", c.ID, c.Error)
	}
	return fmt.Sprintf("capsule %s is %s, not %s", c.ID, c.Status, e.Want)
}
