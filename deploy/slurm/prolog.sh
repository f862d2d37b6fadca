#!/bin/bash
# Slurm Prolog: warm the job's dataset in the node's stokerd before the job
# starts, within the job's byte budget and deadline, and keep the progress
# for the job's output (task-prolog.sh prints it there).
#
# slurm.conf:
#   Prolog=/etc/stoker/slurm/prolog.sh
#   Epilog=/etc/stoker/slurm/epilog.sh
#   TaskProlog=/etc/stoker/slurm/task-prolog.sh
#   PrologFlags=Alloc      # run at allocation, on every node of the job
#
# A job asks for it in its --extra (or --comment) string, words of the form
# stoker.KEY=VALUE:
#   sbatch --extra "stoker.url=s3://bucket/train/ stoker.seed=7 stoker.epochs=2 stoker.budget=200GiB stoker.deadline=10m" job.sh
# Keys: url (required), seed, epoch (first epoch, 0), epochs (1),
# shuffle_window, budget (bytes over the cluster; default: none), deadline
# (a duration; default and cap: STOKER_PROLOG_MAX_WAIT seconds, and never
# past the job's end).
#
# Settings (environment, or /etc/default/stoker-slurm):
#   STOKER_BIN (/usr/local/bin/stoker), STOKER_SERVER
#   (unix:///run/stoker/stoker.sock), STOKER_TOKEN_FILE (for a stokerd with
#   --auth-token-file), STOKER_SLURM_DIR (/run/stoker/slurm),
#   STOKER_PROLOG_MAX_WAIT (600 seconds), STOKER_PROLOG_NODES (first: only
#   the job's first node sends the hint, the cluster spreads it to the
#   owners; all: every node).
#
# It always exits 0: a failed warm-up slows the job's first epoch, it must
# not drain the node. What went wrong is in the job's output and here on
# stderr (the slurmd log).
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
conf=${STOKER_SLURM_CONF:-/etc/default/stoker-slurm}
# shellcheck source=/dev/null
[ -r "$conf" ] && . "$conf"
STOKER_BIN=${STOKER_BIN:-/usr/local/bin/stoker}
STOKER_SERVER=${STOKER_SERVER:-unix:///run/stoker/stoker.sock}
STOKER_SLURM_DIR=${STOKER_SLURM_DIR:-/run/stoker/slurm}
STOKER_PROLOG_MAX_WAIT=${STOKER_PROLOG_MAX_WAIT:-600}
STOKER_PROLOG_NODES=${STOKER_PROLOG_NODES:-first}

job=${SLURM_JOB_ID:-}
if [ -z "$job" ]; then
  echo "stoker prolog: no SLURM_JOB_ID: not run by slurmd" >&2
  exit 0
fi
log="$STOKER_SLURM_DIR/job-$job.log"

# say LINE: into the job's log (and stderr, the slurmd log).
say() {
  local line
  line="$(date -u +%H:%M:%S) stoker: $*"
  echo "$line" >>"$log"
  echo "job $job: $line" >&2
}

# The job's request: stoker.KEY=VALUE words of --extra, then --comment.
url="" seed=0 epoch=0 epochs=1 window="" budget="" deadline=""
for word in ${SLURM_JOB_EXTRA:-} ${SLURM_JOB_COMMENT:-}; do
  case "$word" in
    stoker.url=*) [ -z "$url" ] && url=${word#stoker.url=} ;;
    stoker.seed=*) seed=${word#stoker.seed=} ;;
    stoker.epoch=*) epoch=${word#stoker.epoch=} ;;
    stoker.epochs=*) epochs=${word#stoker.epochs=} ;;
    stoker.shuffle_window=*) window=${word#stoker.shuffle_window=} ;;
    stoker.budget=*) budget=${word#stoker.budget=} ;;
    stoker.deadline=*) deadline=${word#stoker.deadline=} ;;
  esac
done
[ -z "$url" ] && exit 0 # the job asked for nothing

mkdir -p "$STOKER_SLURM_DIR" && chmod 0755 "$STOKER_SLURM_DIR"
: >"$log"
chmod 0644 "$log"
[ -n "${SLURM_JOB_UID:-}" ] && chown "$SLURM_JOB_UID" "$log" 2>/dev/null

for v in "$seed" "$epoch" "$epochs"; do
  case "$v" in
    '' | *[!0-9]*) say "not warming: stoker.seed, stoker.epoch and stoker.epochs must be whole numbers (got seed=$seed epoch=$epoch epochs=$epochs)"; exit 0 ;;
  esac
done

# Only the job's first node sends the hint (when scontrol can say which).
if [ "$STOKER_PROLOG_NODES" = first ] && [ -n "${SLURM_JOB_NODELIST:-}" ] && command -v scontrol >/dev/null; then
  first=$(scontrol show hostnames "$SLURM_JOB_NODELIST" 2>/dev/null | head -n 1)
  if [ -n "$first" ] && [ "$first" != "${SLURMD_NODENAME:-$(hostname -s)}" ]; then
    say "the job's first node, $first, warms $url for the cluster"
    exit 0
  fi
fi

# The deadline: the job's, capped by the longest a prolog may wait and by
# the job's end.
wait_s=$STOKER_PROLOG_MAX_WAIT
if [ -n "$deadline" ]; then
  case "$deadline" in
    *[!0-9smh]* | '') say "not warming: stoker.deadline=$deadline is not a duration like 90s, 10m or 1h"; exit 0 ;;
    *h) d=$((${deadline%h} * 3600)) ;;
    *m) d=$((${deadline%m} * 60)) ;;
    *s) d=${deadline%s} ;;
    *) d=$deadline ;;
  esac
  [ "$d" -lt "$wait_s" ] && wait_s=$d
fi
if [ -n "${SLURM_JOB_END_TIME:-}" ] && [ "${SLURM_JOB_END_TIME}" -gt 0 ] 2>/dev/null; then
  left=$((SLURM_JOB_END_TIME - $(date +%s)))
  [ "$left" -lt "$wait_s" ] && wait_s=$left
fi
if [ "$wait_s" -le 0 ]; then
  say "not warming $url: no time left before the job's end"
  exit 0
fi

args=(prefetch --server "$STOKER_SERVER" --seed "$seed" --epoch "$epoch" --epochs "$epochs" --deadline "${wait_s}s" --wait --interval 5s)
[ -n "$window" ] && args+=(--shuffle-window "$window")
[ -n "$budget" ] && args+=(--budget "$budget")
[ -n "${STOKER_TOKEN_FILE:-}" ] && args+=(--token-file "$STOKER_TOKEN_FILE")
args+=("$url")

say "warming $url (seed $seed, epochs $epoch..$((epoch + epochs - 1)), budget ${budget:-none}, at most ${wait_s}s) on $STOKER_SERVER"
start=$(date +%s)
# The progress line is redrawn with carriage returns: one line each.
"$STOKER_BIN" "${args[@]}" 2>&1 | tr '\r' '\n' | while IFS= read -r line; do
  [ -n "$line" ] && say "$line"
done
rc=${PIPESTATUS[0]}
if [ "$rc" -eq 0 ]; then
  say "warm: $url in $(($(date +%s) - start))s"
else
  say "warming $url stopped (exit $rc) after $(($(date +%s) - start))s: the job reads the rest as it goes"
fi
exit 0
