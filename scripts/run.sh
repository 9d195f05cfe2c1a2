#!/bin/sh
# `make run`: installs what the platform needs, builds runsc, envd and
# nestbox, links nestbox onto PATH and starts `nestbox up`. Each phase prints
# one line with its duration; the commands' own output (apt, go) goes to log
# files under $BIN/logs, and a failed phase prints the end of its log.
# runsc (minutes on a fresh machine) builds while envd and nestbox do.
set -eu

: "${BIN:?BIN must be set (make run sets it)}" "${RUNSC:?RUNSC must be set (make run sets it)}"
MAKE=${MAKE:-make}
LOGS=$BIN/logs
mkdir -p "$LOGS"
echo "build output goes to $LOGS/"

now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# fail prints what failed, the end of its log, and exits.
fail() {
	echo "$1 failed; the end of $2:" >&2
	tail -n 25 "$2" >&2
	exit 1
}

# phase LABEL LOG CMD...: runs CMD with its output in LOG, then prints one
# line with LABEL and how long it took.
phase() {
	label=$1 log=$2
	shift 2
	start=$(now)
	"$@" >"$log" 2>&1 || fail "$label" "$log"
	echo "$label: done in $(took "$start")"
}

phase "installing packages" "$LOGS/packages.log" scripts/ensure-packages.sh

runsc_start=$(now)
if [ -x "$RUNSC" ]; then
	runsc_pid=""
else
	echo "building runsc in the background (a few minutes on a fresh machine)"
	$MAKE -s runsc >"$LOGS/runsc.log" 2>&1 &
	runsc_pid=$!
fi
phase "building envd and nestbox" "$LOGS/nestbox.log" $MAKE -s envd nestbox
if [ -n "$runsc_pid" ]; then
	wait "$runsc_pid" || fail "building runsc" "$LOGS/runsc.log"
	echo "building runsc: done in $(took "$runsc_start")"
fi
ln -sf "$(basename "$RUNSC")" "$BIN/runsc"

# The CLI is `nestbox`: link it onto PATH unless something else has the name.
link=/usr/local/bin/nestbox
if [ -L "$link" ] || [ ! -e "$link" ]; then
	if ln -sfn "$BIN/nestbox" "$link" 2>/dev/null; then
		echo "linked $link -> $BIN/nestbox"
	else
		echo "could not link $link; the CLI is $BIN/nestbox"
	fi
else
	echo "$link is not ours, left alone; the CLI is $BIN/nestbox"
fi

exec "$BIN/nestbox" up
