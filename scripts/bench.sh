#!/bin/sh
# Runs Nestbox's benchmarks and prints the numbers that docs/benchmarks.md
# records. Usage: make bench (it builds what it needs first).
set -eu
cd "$(dirname "$0")/.."

echo "== machine"
echo "$(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr), $(go version | cut -d' ' -f3)"

echo "== envd Go benchmarks"
go test -run '^$' -bench . -benchtime "${BENCHTIME:-300x}" -count 1 ./internal/envd/...

echo "== network setup and teardown of one sandbox (netlink and nftables, no sandbox; docs/benchmarks.md, issue 9)"
go test -run '^$' -bench '^BenchmarkSetup$' -benchtime "${NETWORK_BENCHTIME:-20x}" -count 1 ./internal/network/

echo "== host agent benchmarks (real runsc, minimal template)"
go test -run '^$' -bench 'Create|Destroy|BareRunsc' -benchtime "${AGENT_BENCHTIME:-20x}" -count 1 ./internal/agent/

echo "== pause and resume (real runsc, minimal template; memory and disk tier; bare runsc checkpoint/restore in the same run)"
go test -run '^$' -bench 'PauseResume|BareCheckpoint' -benchtime "${PAUSE_BENCHTIME:-10x}" -count 1 -timeout 30m ./internal/agent/

echo "== fork: ForkSandbox of an idle sandbox and one holding 100 MiB, 1, 5 and 10 forks (5 also one at a time), and the first exec in a fork"
go test -run '^$' -bench 'BenchmarkFork$' -benchtime "${FORK_BENCHTIME:-5x}" -count 1 -timeout 30m ./internal/agent/

echo "== snapshots: CreateSnapshot of an idle sandbox and one holding 100 MiB, a create from the snapshot and its first exec, the same from a snapshot with a warm pool of one; bare runsc checkpoint/restore in the same run"
go test -run '^$' -bench 'BenchmarkSnapshot$|BenchmarkSnapshotPooled$|BareCheckpoint/(idle|100MiB)$' -benchtime "${FORK_BENCHTIME:-5x}" -count 1 -timeout 30m ./internal/agent/

echo "== loading a disk-tier snapshot's memory: -direct (default) against -background (lazy)"
go test -run '^$' -bench 'ResumeLoading' -benchtime "${PAUSE_BENCHTIME:-10x}" -count 1 -timeout 30m ./internal/agent/

echo "== the platform through its API, next to the host agent alone (base template)"
go test -run '^$' -bench '^BenchmarkCreateToFirstExec$|ExecRoundTrip' -benchtime "${API_BENCHTIME:-20x}" -count 1 -timeout 30m ./cmd/nestbox/
echo "== warm pool: the same through a pool of 20 base sandboxes (--pool base=20), one at a time, bursts of 20, and against the agent"
go test -run '^$' -bench 'PooledCreateToFirstExec' -benchtime "${API_BENCHTIME:-20x}" -count 1 -timeout 30m ./cmd/nestbox/
echo "== bare runsc in the same run (base template)"
go test -run '^$' -bench 'BareRunsc/base' -benchtime "${API_BENCHTIME:-20x}" -count 1 ./internal/agent/

echo "== the API's reads under load: list (pages of 100 and of 10) and get, 32 clients, a nestbox server on PostgreSQL and Redis"
go test -run '^$' -bench 'BenchmarkAPIReadLoad' -benchtime "${READ_BENCHTIME:-20000x}" -count 1 ./cmd/nestbox/
echo "== fleet creates: 1, 2 and 3 agents, 1 and 2 control planes, 6 at a time (minimal template), and bare runsc (minimal) in the same run"
go test -run '^$' -bench 'BenchmarkFleetCreate' -benchtime "${FLEET_BENCHTIME:-24x}" -count 1 -timeout 30m ./cmd/nestbox/
go test -run '^$' -bench 'BareRunsc/minimal' -benchtime "${FLEET_BENCHTIME:-24x}" -count 1 ./internal/agent/

echo "== density: ${NESTBOX_DENSITY_N:-20} idle base sandboxes created in steps (the full run: make bench-density N=1000)"
NESTBOX_DENSITY_N=${NESTBOX_DENSITY_N:-20} go test -run '^$' -bench '^BenchmarkDensity$' -benchtime 1x -count 1 -timeout 60m ./internal/agent/
echo "== density baseline: the same number of idle base sandboxes with bare runsc (no agent around them)"
NESTBOX_DENSITY_N=${NESTBOX_DENSITY_N:-20} go test -run '^$' -bench '^BenchmarkBareDensity$' -benchtime 1x -count 1 -timeout 60m ./internal/agent/

echo "== envd binary and idle memory"
size=$(stat -c %s bin/envd)
port=$((40000 + $$ % 10000))
bin/envd --dev --port "$port" --log-level error &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
i=0
until curl -fs -o /dev/null "http://127.0.0.1:$port/health"; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "envd did not start" >&2; exit 1; }
	sleep 0.05
done
sleep 1
rss=$(awk '/^VmRSS:/ {print $2}' /proc/$pid/status)
echo "envd binary: $((size / 1024 / 1024)) MiB ($size bytes); idle RSS after start: $((rss / 1024)) MiB ($rss kB)"
