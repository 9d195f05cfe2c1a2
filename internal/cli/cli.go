// Package cli implements the client verbs of the nestbox command
// (`nestbox capsule ...`, `nestbox key ...`, `nestbox template ...`,
// `nestbox snapshot ...`, `nestbox host ...`, `nestbox audit ...`). It is
// built on the public Go SDK (package nestbox.dev) alone, so everything the
// CLI does a program can do too. Only cmd/nestbox imports it; `nestbox up`
// also uses WriteCredentials.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// IO is what a verb reads and writes. The zero value of an optional field
// means "not a terminal"; StdIO fills it for the real process.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Term is the terminal that Stdin reads from, or nil when Stdin is not
	// a terminal. `capsule shell` puts it in raw mode and follows its size;
	// `capsule exec` passes Stdin through only when it is nil.
	Term TTY
	// StderrIsTerminal turns on progress output on Stderr.
	StderrIsTerminal bool
	// Getenv reads an environment variable; nil means os.Getenv.
	Getenv func(key string) string
	// URL and APIKey are the connection given by global flags before the
	// verb (see GlobalFlags); a verb's own --url and --api-key win, and
	// empty means the environment, then the credentials file.
	URL, APIKey string
}

func (s IO) getenv(key string) string {
	if s.Getenv != nil {
		return s.Getenv(key)
	}
	return os.Getenv(key)
}

func (s IO) stdin() io.Reader {
	if s.Stdin == nil {
		return strings.NewReader("")
	}
	return s.Stdin
}

// TTY is the user's terminal as `capsule shell` needs it.
type TTY interface {
	// MakeRaw puts the terminal in raw mode (keystrokes such as Ctrl-C
	// arrive as bytes) and returns the function that restores it.
	MakeRaw() (restore func() error, err error)
	// Size returns the terminal's width and height in characters.
	Size() (cols, rows int, err error)
	// Resizes receives a value whenever the terminal's size changes,
	// until ctx ends; then it is closed.
	Resizes(ctx context.Context) <-chan struct{}
}

// ExitError passes the exit code of a process in a capsule through
// `capsule exec` and `capsule shell`: the caller exits with Code and
// prints nothing, the process's own output having said everything.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// exitError returns the error for a remote exit code: nil for 0, 255 for
// a process ended by a signal (reported as -1), as ssh does.
func exitError(code int) error {
	switch {
	case code == 0:
		return nil
	case code < 0 || code > 255:
		return &ExitError{Code: 255}
	}
	return &ExitError{Code: code}
}

// verb is one subcommand of a group.
type verb struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdio IO) error
}

var capsuleVerbs = []verb{
	{"create", "create a capsule and print its ID", capsuleCreate},
	{"ls", "list capsules", capsuleList},
	{"get", "show a capsule", capsuleGet},
	{"rm", "destroy capsules", capsuleRemove},
	{"pause", "pause capsules to disk, with their memory", capsulePause},
	{"resume", "resume paused capsules", capsuleResume},
	{"fork", "fork a running capsule into new ones", capsuleFork},
	{"snapshot", "snapshot a running capsule to start new ones from", capsuleSnapshot},
	{"exec", "run a command in a capsule, streaming its output", capsuleExec},
	{"shell", "open an interactive terminal in a capsule", capsuleShell},
	{"cp", "copy a file into or out of a capsule", capsuleCopy},
	{"logs", "show a capsule's status history", capsuleLogs},
	{"metrics", "show a capsule's resource use", capsuleMetrics},
}

var keyVerbs = []verb{
	{"create", "create an API key and print its secret", keyCreate},
	{"ls", "list API keys", keyList},
	{"rm", "revoke API keys", keyRemove},
}

var templateVerbs = []verb{
	{"ls", "list templates", templateList},
	{"create", "make a template from a snapshot", templateCreate},
	{"rm", "remove templates made from snapshots", templateRemove},
	{"pool", "keep capsules of a template made from a snapshot ready", templatePool},
}

var snapshotVerbs = []verb{
	{"ls", "list snapshots", snapshotList},
	{"rm", "delete snapshots", snapshotRemove},
}

// Capsule runs `nestbox capsule <verb> ...`.
func Capsule(ctx context.Context, args []string, stdio IO) error {
	return dispatch(ctx, "capsule", capsuleVerbs, args, stdio)
}

// Key runs `nestbox key <verb> ...`.
func Key(ctx context.Context, args []string, stdio IO) error {
	return dispatch(ctx, "key", keyVerbs, args, stdio)
}

// Template runs `nestbox template <verb> ...`.
func Template(ctx context.Context, args []string, stdio IO) error {
	return dispatch(ctx, "template", templateVerbs, args, stdio)
}

// Snapshot runs `nestbox snapshot <verb> ...`.
func Snapshot(ctx context.Context, args []string, stdio IO) error {
	return dispatch(ctx, "snapshot", snapshotVerbs, args, stdio)
}

// dispatch runs the verb named by args[0]. Help goes to Stdout and
// returns flag.ErrHelp.
func dispatch(ctx context.Context, group string, verbs []verb, args []string, stdio IO) error {
	args, stdio, err := withGlobal(args, stdio)
	if err != nil {
		groupUsage(stdio.Stderr, group, verbs)
		return fmt.Errorf("%s: %w", group, err)
	}
	if len(args) == 0 {
		groupUsage(stdio.Stderr, group, verbs)
		return fmt.Errorf("%s: no command given", group)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		groupUsage(stdio.Stdout, group, verbs)
		return flag.ErrHelp
	}
	for _, v := range verbs {
		if v.name == args[0] {
			return v.run(ctx, args[1:], stdio)
		}
	}
	groupUsage(stdio.Stderr, group, verbs)
	return fmt.Errorf("%s: unknown command %q", group, args[0])
}

func groupUsage(w io.Writer, group string, verbs []verb) {
	fmt.Fprintf(w, "Usage: nestbox %s <command> [flags]\n\nCommands:\n", group)
	defer fmt.Fprintf(w, "The flags --url and --api-key may also come before the command: nestbox %s %s <command>.\n", GlobalUsage, group)
	for _, v := range verbs {
		fmt.Fprintf(w, "  %-8s %s\n", v.name, v.summary)
	}
	fmt.Fprintf(w, "\nRun 'nestbox %s <command> --help' for a command's flags.\n", group)
}

// errUsage marks a misuse of a verb's arguments.
var errUsage = errors.New("usage")
