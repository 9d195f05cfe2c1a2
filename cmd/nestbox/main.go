// Command nestbox is Nestbox's one binary. Its subcommands run the platform's
// roles (`up`: everything on one machine; `server`: the control plane;
// `agent`: the host agent) and are its command-line client (`capsule`,
// `key`, `template`, built on the Go SDK).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"nestbox.dev/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	var exit *cli.ExitError
	if errors.As(err, &exit) {
		os.Exit(exit.Code) // the remote command's exit code
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nestbox:", err)
		os.Exit(1)
	}
}

// command is one subcommand.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// clientCommands are the commands that take cli.GlobalFlags before their
// name.
var clientCommands = map[string]bool{"capsule": true, "key": true, "template": true, "snapshot": true, "host": true, "audit": true, "usage": true,
	"account": true, "team": true}

var commands = []command{
	{"up", "run the whole platform on this machine (control plane + host agent)", runUp},
	{"server", "run the control plane alone, in front of a host agent or a fleet", runServer},
	{"agent", "run the host agent: the sandboxes of this machine and their API", runAgent},
	{"capsule", "create, list, inspect, use and destroy capsules", clientCommand(cli.Capsule)},
	{"key", "create, list and revoke API keys", clientCommand(cli.Key)},
	{"template", "list templates, make them from snapshots", clientCommand(cli.Template)},
	{"snapshot", "list and delete snapshots of capsules", clientCommand(cli.Snapshot)},
	{"host", "list, cordon, drain and remove a fleet's hosts; make join tokens (admins)", clientCommand(cli.Host)},
	{"audit", "list the team's audit log, or the platform's (admins)", clientCommand(cli.Audit)},
	{"usage", "show the team's capsule usage per day: a table and a bar chart", clientCommand(cli.Usage)},
	{"account", "sign up, log in and out, show who the commands act as", clientCommand(cli.Account)},
	{"team", "list and switch your teams, list members, invite", clientCommand(cli.Team)},
}

// clientCommand adapts a CLI verb group to a command.
func clientCommand(fn func(ctx context.Context, args []string, io cli.IO) error) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		stdio := cli.StdIO()
		stdio.Stdout, stdio.Stderr = stdout, stderr
		return fn(ctx, args, stdio)
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: nestbox [global flags] <command> [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nGlobal flags, before or after the command (capsule, key, template):\n")
	fmt.Fprintf(w, "  --url URL       control plane URL (env NESTBOX_URL)\n")
	fmt.Fprintf(w, "  --api-key KEY   API key (env NESTBOX_API_KEY)\n")
	fmt.Fprintf(w, "\nRun 'nestbox <command> --help' for a command's flags.\n")
}

// run dispatches to a subcommand. --help prints the commands to stdout and
// returns flag.ErrHelp.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	global, args, err := cli.SplitGlobal(args)
	if err != nil {
		usage(stderr)
		return err
	}
	if len(global) > 0 && len(args) > 0 && !clientCommands[args[0]] && !isHelp(args[0]) {
		usage(stderr)
		return fmt.Errorf("%s is a flag of the client commands (capsule, key, template), not of %q", global[0], args[0])
	}
	if len(args) == 0 {
		usage(stderr)
		return errors.New("no command given")
	}
	if isHelp(args[0]) {
		usage(stdout)
		return flag.ErrHelp
	}
	for _, c := range commands {
		if c.name == args[0] {
			// The client verbs read the global flags in front of theirs.
			return c.run(ctx, append(global, args[1:]...), stdout, stderr)
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}
