#!/bin/sh
# Starts the PostgreSQL and Redis servers the test suite uses: private
# instances of this project, on their own loopback ports, with their data
# under one directory. They never depend on (or touch) servers the machine
# may already run. Installs the Debian packages when they are missing.
# Idempotent: a server that already answers is left alone.
#
# Prints nothing but progress; the URLs are fixed (see the Makefile).
set -eu

dir=${NESTBOX_TEST_SERVICES_DIR:-/var/lib/nestbox-test}
pg_port=${NESTBOX_TEST_PG_PORT:-55432}
redis_port=${NESTBOX_TEST_REDIS_PORT:-56379}

need=""
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
if [ -n "$need" ]; then
	echo "installing test servers:$need"
	apt-get update -qq
	# Debian's postinst would start its own cluster and server; the test
	# suite uses private instances, so services stay down (policy-rc.d).
	made_policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		made_policy=yes
	fi
	rc=0
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need || rc=$?
	if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
	[ "$rc" -eq 0 ] || exit "$rc"
fi

mkdir -p "$dir"

# PostgreSQL: a cluster of our own with trust authentication on loopback.
# An existing cluster runs on the server version that made it (a Debian
# upgrade may install a newer one next to it); a new one on the newest.
pgdata="$dir/postgres"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
if [ -f "$pgdata/PG_VERSION" ] && [ -x "/usr/lib/postgresql/$(cat "$pgdata/PG_VERSION")/bin/pg_ctl" ]; then
	pgbin="/usr/lib/postgresql/$(cat "$pgdata/PG_VERSION")/bin"
fi
if ! "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"; then
	mkdir -p "$pgdata"
	chown postgres:postgres "$pgdata"
	chmod 0700 "$pgdata"
	if [ ! -f "$pgdata/PG_VERSION" ]; then
		echo "creating the test PostgreSQL cluster in $pgdata"
		# C.UTF-8 always exists on Debian: the caller's LANG (an ssh
		# client's locale that this machine never generated) must not
		# make initdb fail.
		runuser -u postgres -- env LC_ALL=C.UTF-8 "$pgbin/initdb" -D "$pgdata" -U postgres -A trust \
			--locale=C.UTF-8 --encoding=UTF8 >/dev/null
	fi
	echo "starting PostgreSQL on 127.0.0.1:$pg_port"
	runuser -u postgres -- env LC_ALL=C.UTF-8 "$pgbin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w -t 60 \
		-o "-p $pg_port -c listen_addresses=127.0.0.1 -k $pgdata -c max_connections=300 -c fsync=off" start >/dev/null
fi

# Redis: no persistence, loopback only.
if ! redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1; then
	echo "starting Redis on 127.0.0.1:$redis_port"
	redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
		--dir "$dir" --logfile "$dir/redis.log" --daemonize yes --pidfile "$dir/redis.pid"
	i=0
	until redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -gt 100 ]; then echo "Redis did not start: see $dir/redis.log" >&2; exit 1; fi
		sleep 0.1
	done
fi
