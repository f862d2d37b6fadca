#!/bin/bash
# Slurm Epilog: reports the node's cache figures at the end of a job that
# asked for a warm-up (slurmd log, and the log prolog.sh kept), then removes
# the job's files. Always exits 0 (a failing epilog drains the node).
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
conf=${STOKER_SLURM_CONF:-/etc/default/stoker-slurm}
# shellcheck source=/dev/null
[ -r "$conf" ] && . "$conf"
STOKER_BIN=${STOKER_BIN:-/usr/local/bin/stoker}
STOKER_SERVER=${STOKER_SERVER:-unix:///run/stoker/stoker.sock}
STOKER_SLURM_DIR=${STOKER_SLURM_DIR:-/run/stoker/slurm}
job=${SLURM_JOB_ID:-}
[ -n "$job" ] || exit 0
log="$STOKER_SLURM_DIR/job-$job.log"
[ -e "$log" ] || exit 0 # the job asked for no warm-up
args=(stats --server "$STOKER_SERVER")
[ -n "${STOKER_TOKEN_FILE:-}" ] && args+=(--token-file "$STOKER_TOKEN_FILE")
{
  echo "$(date -u +%H:%M:%S) stoker: job $job ended (exit ${SLURM_JOB_EXIT_CODE:-?}); this node's cache now:"
  "$STOKER_BIN" "${args[@]}" 2>&1 | sed 's/^/  /'
} | tee -a "$log" | sed "s/^/job $job: /" >&2
rm -f "$log"
exit 0
