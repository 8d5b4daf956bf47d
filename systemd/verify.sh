#!/usr/bin/env bash
# Checks the committed units with `systemd-analyze verify`, as CI does (.ci/run).
#
# verify insists that ExecStart's binary exists, so it checks copies whose ExecStart points at
# the freshly built relay; and it prints many problems (unknown keys, bad values) yet still
# exits 0, so any output at all fails the check. The user unit is verified with --user, which
# needs a runtime directory but no running user manager: a temporary one is used.
#
# Usage: systemd/verify.sh path/to/xoauth-relay
set -euo pipefail

bin=${1:?usage: systemd/verify.sh path/to/xoauth-relay}
if [ ! -x "$bin" ]; then
    echo "verify.sh: $bin is not an executable file" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A link with a plain path, so ExecStart needs no quoting whatever the checkout's path is.
ln -s "$(realpath "$bin")" "$work/xoauth-relay"
mkdir -p "$work/system" "$work/user" "$work/runtime"
chmod 700 "$work/runtime"

failed=0
verify() { # verify SCOPE UNIT-FILE
    local scope=$1 source=$2 copy="$work/$1/xoauth-relay.service" output
    sed "s|^ExecStart=[^ ]*|ExecStart=$work/xoauth-relay|" "$source" >"$copy"
    if ! grep -q "^ExecStart=$work/xoauth-relay " "$copy"; then
        echo "FAIL $source: no ExecStart= line to point at the binary" >&2
        failed=1
        return
    fi
    if [ "$scope" = user ]; then
        output=$(XDG_RUNTIME_DIR="$work/runtime" systemd-analyze --user verify "$copy" 2>&1) || true
    else
        output=$(systemd-analyze verify "$copy" 2>&1) || true
    fi
    # Also catches a non-zero exit: systemd-analyze always says why.
    if [ -n "$output" ]; then
        echo "FAIL $source ($scope):" >&2
        echo "$output" >&2
        failed=1
    else
        echo "ok   $source ($scope)"
    fi
}

systemd-analyze --version | head -n 1
verify system "$here/xoauth-relay.service"
verify user "$here/xoauth-relay-user.service"
exit "$failed"
