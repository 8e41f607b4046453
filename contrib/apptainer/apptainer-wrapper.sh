#!/bin/sh
# scan-gate wrapper for apptainer and singularity.
#
# Installed under the runtime's name (apptainer, singularity) in a directory that comes
# before the real runtime in PATH, it asks `scan-gate launch-check` about the image the
# command line would start, then runs the real runtime with the arguments untouched: exec
# replaces this shell, so the exit status, signals, stdin, stdout and stderr are the
# runtime's own. A blocked launch exits with scan-gate's status (1 blocked, 2 the gate is
# misconfigured) and its message on stderr.
#
# This is a convenience, not enforcement: a user can always call the real binary. See
# README.md in this directory.
#
# Settings (environment, or /etc/scan-gate/apptainer-wrapper.conf, a shell fragment):
#   SCAN_GATE         the scan-gate binary         (default /usr/local/bin/scan-gate)
#   SCAN_GATE_REAL    the real runtime             (default /usr/bin/<name this runs as>)
#   SCAN_GATE_POLICY  the policy file              (default: scan-gate's own default)

conf=/etc/scan-gate/apptainer-wrapper.conf
if [ -r "$conf" ]; then
	. "$conf"
fi

name=${0##*/}
case $name in
apptainer | singularity) ;;
*) name=apptainer ;;
esac
gate=${SCAN_GATE:-/usr/local/bin/scan-gate}
real=${SCAN_GATE_REAL:-/usr/bin/$name}

if [ ! -x "$real" ]; then
	echo "scan-gate wrapper: the real $name is not at $real (set SCAN_GATE_REAL)" >&2
	exit 127
fi
if [ "$real" -ef "$0" ]; then
	echo "scan-gate wrapper: SCAN_GATE_REAL ($real) is this wrapper itself" >&2
	exit 127
fi

if [ -n "${SCAN_GATE_POLICY:-}" ]; then
	"$gate" launch-check --policy "$SCAN_GATE_POLICY" -- "$name" "$@" </dev/null
else
	"$gate" launch-check -- "$name" "$@" </dev/null
fi
status=$?
if [ "$status" -ne 0 ]; then
	exit "$status"
fi
exec "$real" "$@"
