#!/bin/sh
# Runs a command (the test suite) with Debian's default shell startup files
# for root instead of the machine's own. Tests start `bash -l` as root on the
# host (envd outside a sandbox), and a login shell runs whatever the
# operator put in /root/.profile and /root/.bashrc: on the machines we run
# on that includes `pyenv init`, whose rehash takes a lock file that a
# killed shell leaves behind, and every later root shell then waits 60 s for
# it. A private mount namespace bind-mounts /etc/skel's files over root's,
# for this command and its children only; the machine is not changed.
set -eu
if [ "$(id -u)" -ne 0 ] || [ "${NESTBOX_CLEAN_HOME:-}" = done ]; then
	exec "$@"
fi
if [ "${NESTBOX_CLEAN_HOME:-}" != inside ]; then
	NESTBOX_CLEAN_HOME=inside exec unshare --mount --propagation private "$0" "$@"
fi
home=$(getent passwd root | cut -d: -f6)
for f in .profile .bashrc .bash_profile .bash_login; do
	[ -e "$home/$f" ] || continue
	if [ -f "/etc/skel/$f" ]; then
		mount --bind "/etc/skel/$f" "$home/$f"
	else
		mount --bind /dev/null "$home/$f"
	fi
done
NESTBOX_CLEAN_HOME=done exec "$@"
