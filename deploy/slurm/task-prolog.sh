#!/bin/bash
# Slurm TaskProlog: runs as the job's user before its tasks. It points the
# trainers at the node's stokerd (STOKER_SERVER) and prints what the prolog
# did (prolog.sh's log) into the job's output, once per node: slurmstepd
# writes "print ..." lines of a TaskProlog to the task's standard output and
# turns "export NAME=VALUE" lines into the task's environment.
set -u
STOKER_SERVER=${STOKER_SERVER:-unix:///run/stoker/stoker.sock}
STOKER_SLURM_DIR=${STOKER_SLURM_DIR:-/run/stoker/slurm}
echo "export STOKER_SERVER=$STOKER_SERVER"
job=${SLURM_JOB_ID:-}
log="$STOKER_SLURM_DIR/job-$job.log"
[ -n "$job" ] && [ -r "$log" ] || exit 0
[ "${SLURM_LOCALID:-0}" = 0 ] || exit 0
# Once per job on this node: the first task to make the marker prints.
marker="${TMPDIR:-/tmp}/stoker-job-$job-$(id -u).printed"
(set -C; : >"$marker") 2>/dev/null || exit 0
while IFS= read -r line; do
  echo "print $line"
done <"$log"
exit 0
