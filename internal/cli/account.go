package cli

import (
	"bufio"
	"context"
	"errors"
	"strings"
)

var accountVerbs = []verb{
	{"signup", "create an account; a verification link is mailed", accountSignUp},
	{"login", "log in: later commands act as you, in your team", accountLogIn},
	{"logout", "end the session of `account login`", accountLogOut},
	{"whoami", "show who the commands act as, and in which team", accountWhoAmI},
}

// Account runs `nestbox account <verb> ...`.
func Account(ctx context.Context, args []string, stdio IO) error {
	return dispatch(ctx, "account", accountVerbs, args, stdio)
}

// readPassword reads the password from the first line of Stdin: never a
// flag, which other users of the machine could read in the process list.
func readPassword(stdio IO) (string, error) {
	line, err := bufio.NewReader(stdio.stdin()).ReadString('\n')
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return "", errors.New("no password on standard input: pipe it in, e.g. `read -rs pw; printf '%s\\n' \"$pw\" | nestbox account login --email ...`")
		}
		return "", errors.New("the password on standard input is empty")
	}
	return line, nil
}
