package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"nestbox.dev"
)

// command is a verb's flag set with the connection flags every verb has.
type command struct {
	fs       *flag.FlagSet
	name     string // "capsule create"
	synopsis string // "[flags] ID..."
	summary  string
	stdio    IO
	url, key string
}

func newCommand(stdio IO, name, synopsis, summary string) *command {
	c := &command{
		fs:       flag.NewFlagSet("nestbox "+name, flag.ContinueOnError),
		name:     name,
		synopsis: synopsis,
		summary:  summary,
		stdio:    stdio,
	}
	// Parse errors are returned, and printed once by the caller; usage is
	// printed by parse.
	c.fs.SetOutput(io.Discard)
	c.fs.Usage = func() {}
	c.fs.StringVar(&c.url, "url", "", "control plane URL (env NESTBOX_URL; default: the credentials file that nestbox up writes)")
	c.fs.StringVar(&c.key, "api-key", "", "API key (env NESTBOX_API_KEY; default: the credentials file that nestbox up writes)")
	return c
}

func (c *command) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: nestbox %s %s\n\n%s\n\nFlags:\n", c.name, c.synopsis, c.summary)
	c.fs.SetOutput(w)
	c.fs.PrintDefaults()
	c.fs.SetOutput(io.Discard)
}

// parse parses flags anywhere among args, up to a "--" after which all
// arguments are positional, and returns the positional arguments. It
// checks that there are between min and max of them (max < 0: no limit).
// --help prints the usage to Stdout and returns flag.ErrHelp.
func (c *command) parse(args []string, minArgs, maxArgs int) ([]string, error) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			return nil, c.parseError(err)
		}
		rest := c.fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) < minArgs || (maxArgs >= 0 && len(pos) > maxArgs) {
		return nil, c.usageError("wrong number of arguments")
	}
	return pos, nil
}

func (c *command) parseError(err error) error {
	if err == flag.ErrHelp {
		c.usage(c.stdio.Stdout)
		return flag.ErrHelp
	}
	return c.usageError(err.Error())
}

// usageError prints how to get help and returns the error for main.
func (c *command) usageError(msg string) error {
	fmt.Fprintf(c.stdio.Stderr, "Usage: nestbox %s %s\nRun 'nestbox %s --help' for its flags.\n", c.name, c.synopsis, c.name)
	return fmt.Errorf("%s: %s", c.name, msg)
}

// client returns an SDK client for the connection the flags, the
// environment, the session of `nestbox account login` or the credentials
// file name, in that order. ctx bounds the refresh of a session about to
// expire.
func (c *command) client(ctx context.Context) (*nestbox.Client, error) {
	flagURL, flagKey := firstOf(c.url, c.stdio.URL), firstOf(c.key, c.stdio.APIKey)
	if flagKey == "" && c.stdio.getenv(nestbox.EnvAPIKey) == "" {
		s, ok, err := liveSession(ctx, c.stdio, firstOf(flagURL, c.stdio.getenv(nestbox.EnvURL)))
		if err != nil {
			return nil, err
		}
		if ok {
			return nestbox.New(nestbox.Config{URL: s.URL, APIKey: s.AccessToken, UserAgent: "nestbox-cli"})
		}
	}
	url, key, err := resolveConnection(flagURL, flagKey, c.stdio.getenv)
	if err != nil {
		return nil, err
	}
	return nestbox.New(nestbox.Config{URL: url, APIKey: key, UserAgent: "nestbox-cli"})
}

// pairsFlag collects repeated KEY=VALUE flags.
type pairsFlag map[string]string

func (p pairsFlag) String() string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + p[k]
	}
	return strings.Join(keys, ",")
}

func (p pairsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	p[k] = v
	return nil
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}
