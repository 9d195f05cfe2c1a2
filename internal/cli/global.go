package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// GlobalFlags are the flags every client verb takes that may also come
// before the group or the verb: `nestbox --api-key K capsule ls` and
// `nestbox capsule --api-key K ls` mean `nestbox capsule ls --api-key K`.
var GlobalFlags = []string{"url", "api-key"}

// GlobalUsage is the synopsis of the global flags for usage lines.
const GlobalUsage = "[--url URL] [--api-key KEY]"

// SplitGlobal takes the global flags at the start of args ("--url U",
// "--url=U", "-api-key K") and returns them and the arguments after them.
// It stops at the first argument that is not a global flag; a global flag
// without its value is an error.
func SplitGlobal(args []string) (global, rest []string, err error) {
	for len(args) > 0 {
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		if !strings.HasPrefix(args[0], "-") || args[0] == "-" || args[0] == "--" || !isGlobal(name) {
			break
		}
		n := 1
		if !hasValue {
			if len(args) < 2 {
				return nil, nil, fmt.Errorf("flag needs an argument: --%s", name)
			}
			n = 2
		}
		global, args = append(global, args[:n]...), args[n:]
	}
	return global, args, nil
}

func isGlobal(name string) bool {
	for _, g := range GlobalFlags {
		if name == g {
			return true
		}
	}
	return false
}

// withGlobal parses the global flags at the start of args into stdio (a
// later one wins) and returns the rest.
func withGlobal(args []string, stdio IO) ([]string, IO, error) {
	global, rest, err := SplitGlobal(args)
	if err != nil || len(global) == 0 {
		return rest, stdio, err
	}
	fs := flag.NewFlagSet("nestbox", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&stdio.URL, "url", stdio.URL, "")
	fs.StringVar(&stdio.APIKey, "api-key", stdio.APIKey, "")
	if err := fs.Parse(global); err != nil {
		return nil, stdio, err
	}
	return rest, stdio, nil
}
