package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"nestbox.dev"
	"nestbox.dev/internal/envdclient"
	"nestbox.dev/internal/errdefs"
)

// maxCmdArgs bounds a command line.
const maxCmdArgs = 4096

// capsuleEnvd resolves the running capsule {id} of the request's team to
// its envd client.
func (s *Server) capsuleEnvd(r *http.Request) (*envdclient.Client, error) {
	return s.capsuleEnvdOutput(r, 0)
}

// capsuleEnvdOutput is capsuleEnvd for a client whose Run keeps maxOutput
// bytes of each stream.
func (s *Server) capsuleEnvdOutput(r *http.Request, maxOutput int) (*envdclient.Client, error) {
	c, h, err := s.life.Running(r.Context(), team(r), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return s.envdFor(c, h, maxOutput), nil
}

func checkExec(req nestbox.ExecRequest) error {
	if len(req.Cmd) == 0 || req.Cmd[0] == "" {
		return errdefs.Invalid("cmd: give the program and its arguments, e.g. [\"ls\", \"-l\"]")
	}
	if len(req.Cmd) > maxCmdArgs {
		return errdefs.Invalid("cmd: at most %d arguments", maxCmdArgs)
	}
	if req.TimeoutSeconds < 0 {
		return errdefs.Invalid("timeout_seconds %d: must not be negative", req.TimeoutSeconds)
	}
	return nil
}

func (s *Server) exec(w http.ResponseWriter, r *http.Request) {
	var req nestbox.ExecRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkExec(req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if !req.Background {
		s.runOnce(w, r, req)
		return
	}
	cl, err := s.capsuleEnvd(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The process must outlive this request: start it under a context
	// that the request's end does not cancel, read its "started" message
	// and let go of the stream.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	st, err := cl.Start(ctx, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer st.Close()
	msg, err := st.Recv()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, nestbox.ExecResult{Pid: msg.Pid})
}

// runOnce runs a one-shot exec. The output it holds until the process
// ends is bounded: per stream by Config.ExecOutputBytes, and across the
// execs in flight by the output budget, of which each reserves its two
// streams' share before it starts (less when the budget runs low; none
// left is 429).
func (s *Server) runOnce(w http.ResponseWriter, r *http.Request, req nestbox.ExecRequest) {
	granted := s.output.take(2 * int64(s.cfg.ExecOutputBytes))
	defer s.output.give(granted)
	perStream := int(granted / 2)
	if perStream < min(minExecOutput, s.cfg.ExecOutputBytes) {
		w.Header().Set("Retry-After", "1")
		s.writeError(w, r, fmt.Errorf("exec: the server holds the output of too many commands; retry shortly: %w", errdefs.ErrExhausted))
		return
	}
	cl, err := s.capsuleEnvdOutput(r, perStream)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := cl.Run(r.Context(), req)
	if code, ok := cannotStart(err); ok {
		// As a shell reports it: the answer is a result, and a 404 stays
		// the capsule's.
		writeJSON(w, http.StatusOK, nestbox.ExecResult{ExitCode: code, Error: err.Error()})
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// Exit codes of a command that could not start, as POSIX shells give them.
const (
	exitNotFound      = 127
	exitNotExecutable = 126
)

// cannotStart returns the shell's exit code for an exec whose program is
// missing (127) or cannot be executed (126): envd's Start answers
// not_found and permission_denied for these alone.
func cannotStart(err error) (int, bool) {
	switch err = errdefs.FromConnect(err); {
	case err == nil:
		return 0, false
	case errors.Is(err, errdefs.ErrNotFound):
		return exitNotFound, true
	case errors.Is(err, errdefs.ErrPermission):
		return exitNotExecutable, true
	}
	return 0, false
}

func (s *Server) listProcesses(w http.ResponseWriter, r *http.Request) {
	cl, err := s.capsuleEnvd(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ps, err := cl.List(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if ps == nil {
		ps = []nestbox.Process{}
	}
	writeJSON(w, http.StatusOK, nestbox.ProcessList{Processes: ps})
}

func (s *Server) signalProcess(w http.ResponseWriter, r *http.Request) {
	pid, err := strconv.ParseUint(r.PathValue("pid"), 10, 32)
	if err != nil || pid == 0 {
		s.writeError(w, r, errdefs.Invalid("pid %q: want a process ID", r.PathValue("pid")))
		return
	}
	var req nestbox.SignalRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Signal != "SIGTERM" && req.Signal != "SIGKILL" {
		s.writeError(w, r, errdefs.Invalid("signal %q: want SIGTERM or SIGKILL", req.Signal))
		return
	}
	cl, err := s.capsuleEnvd(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := cl.Signal(r.Context(), uint32(pid), req.Signal); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
