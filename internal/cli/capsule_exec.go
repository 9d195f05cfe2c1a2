package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"nestbox.dev"
)

// After Ctrl-C, exec sends SIGTERM to the remote process and waits this
// long for it to exit before giving up on it.
const interruptGrace = 5 * time.Second

// capsuleExec is `nestbox capsule exec`: it streams the command's output
// live and returns its exit code as an *ExitError.
func capsuleExec(ctx context.Context, args []string, stdio IO) error {
	c := newCommand(stdio, "capsule exec", "[flags] ID -- CMD [ARGS...]",
		"Run a command in a capsule, streaming its output, and exit with its exit code.\n"+
			"Stdin is passed to the command unless it is a terminal. Ctrl-C sends SIGTERM to the command.")
	var (
		user, cwd string
		env       = pairsFlag{}
		timeout   timeoutFlag
		jsonOut   bool
	)
	c.fs.StringVar(&user, "user", "", "run as this user (default user)")
	c.fs.StringVar(&cwd, "cwd", "", "working directory (default: the user's home)")
	c.fs.Var(env, "env", "environment variable `KEY=VALUE` (repeatable)")
	c.fs.Var(&timeout, "timeout", "kill the command after this `duration`, e.g. 90s (default: none, or 60s with --json; 0 is refused)")
	c.fs.BoolVar(&jsonOut, "json", false, "collect the output and print the result as JSON at the end")
	id, cmd, err := parseExecArgs(c, args)
	if err != nil {
		return err
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	h := client.Capsule(id)
	opts := []nestbox.ExecOption{nestbox.WithCwd(cwd), nestbox.WithUser(user), nestbox.WithEnv(env)}
	if timeout > 0 {
		opts = append(opts, nestbox.WithTimeout(time.Duration(timeout)))
	}
	passStdin := stdio.Term == nil

	if jsonOut {
		if passStdin {
			in, err := io.ReadAll(stdio.stdin())
			if err != nil {
				return fmt.Errorf("read stdin: %w", err)
			}
			opts = append(opts, nestbox.WithStdin(in))
		}
		res, err := h.Exec(ctx, cmd, opts...)
		if err != nil {
			return err
		}
		if res.ExitCode == exitNotFound || res.ExitCode == exitNotExecutable {
			if res.Pid == 0 && res.Error != "" {
				fmt.Fprintf(stdio.Stderr, "nestbox: %s\n", res.Error)
			}
		}
		if err := printJSON(stdio.Stdout, res); err != nil {
			return err
		}
		return exitError(res.ExitCode)
	}

	// The stream outlives ctx by the grace period of an interrupt.
	streamCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	p, err := h.ExecStream(streamCtx, nestbox.NewExecRequest(cmd, opts...), nestbox.WithOutput(stdio.Stdout, stdio.Stderr))
	if code, msg, ok := cannotStart(err); ok {
		fmt.Fprintf(stdio.Stderr, "nestbox: %s\n", msg)
		return exitError(code)
	}
	if err != nil {
		return err
	}
	defer p.Close()
	if passStdin {
		// This goroutine is not joined: a read from a pipe that stays open
		// cannot be interrupted. It ends with Stdin or with the stream.
		go func() {
			_, _ = io.Copy(p.Stdin(), stdio.stdin())
			_ = p.Stdin().Close()
		}()
	} else if err := p.Stdin().Close(); err != nil {
		return err
	}
	// Ctrl-C (ctx ends): ask the command to stop, and stop waiting for it
	// after the grace period. Cancelling a finished stream is harmless.
	stop := context.AfterFunc(ctx, func() {
		sctx, done := context.WithTimeout(streamCtx, time.Second)
		_ = p.Signal(sctx, nestbox.SignalTerm)
		done()
		time.AfterFunc(interruptGrace, cancel)
	})
	defer stop()

	code, err := p.Wait()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	if reason := p.ExitReason(); reason != "" {
		fmt.Fprintf(stdio.Stderr, "nestbox: command ended: %s\n", reason)
	}
	return exitError(code)
}

// parseExecArgs splits `[flags] ID [flags] -- CMD [ARGS...]`. Without
// "--", everything after the ID is the command, flags included.
func parseExecArgs(c *command, args []string) (id string, cmd []string, err error) {
	if err := c.fs.Parse(args); err != nil {
		return "", nil, c.parseError(err)
	}
	rest := c.fs.Args()
	if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
		// `exec [flags] -- ID CMD...`
	} else if len(rest) > 1 && strings.HasPrefix(rest[1], "-") && rest[1] != "--" {
		// Flags after the ID: they end at "--".
		i := 2
		for i < len(rest) && rest[i] != "--" {
			i++
		}
		if i == len(rest) {
			return "", nil, c.usageError("put the command after --")
		}
		if extra, err := c.parse(rest[1:i], 0, 0); err != nil {
			return "", nil, err
		} else if len(extra) > 0 {
			return "", nil, c.usageError("put the command after --")
		}
		rest = append([]string{rest[0]}, rest[i:]...)
	}
	if len(rest) > 1 && rest[1] == "--" {
		rest = append([]string{rest[0]}, rest[2:]...)
	}
	if len(rest) < 2 {
		return "", nil, c.usageError("want a capsule ID and a command")
	}
	return rest[0], rest[1:], nil
}

// Exit codes of a command that could not start, as POSIX shells give them.
const (
	exitNotFound      = 127
	exitNotExecutable = 126
)

// cannotStart returns the shell's exit code and the message of an exec
// stream whose program is missing (127) or cannot be executed (126): the
// stream's error before "started" (an APIError of no HTTP status, the
// HTTP ones being the capsule's) says not_found or permission_denied.
func cannotStart(err error) (code int, msg string, ok bool) {
	var ae *nestbox.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 0 {
		return 0, "", false
	}
	switch ae.Code {
	case "not_found":
		return exitNotFound, ae.Message, true
	case "permission_denied":
		return exitNotExecutable, ae.Message, true
	}
	return 0, "", false
}
