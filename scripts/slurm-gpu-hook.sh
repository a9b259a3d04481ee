#!/bin/sh
# Caduceus's Slurm prolog and epilog (install this one script as both, on every node; it tells which it is
# from SLURM_SCRIPT_CONTEXT):
#   prolog  records which GPUs Slurm gave the job (`scontrol show job -d`: GRES=gpu:h200:2(IDX:0-1)), in a
#           root-only folder of the spool, before any of the job's code runs;
#   epilog  scrubs exactly those GPUs with `caduceus-gpu scrub` and leaves the record in the spool, where the
#           control plane reads it, audits each GPU's scrub, and cordons the node if one failed.
#
# Settings, from the environment (set them in a wrapper that slurm.conf names):
#   CADUCEUS_SLURM_SPOOL  the spool directory shared with the control plane (its `slurmSpool` setting)
#   CADUCEUS_GPU          the caduceus-gpu program (default: caduceus-gpu on PATH)
#   CADUCEUS_GPU_OPTIONS  more options for its scrub, e.g. "--fake-gpus 8" on a cluster of stand-ins
# Slurm gives it SLURM_JOB_ID, SLURMD_NODENAME and SLURM_SCRIPT_CONTEXT. Jobs without GPUs leave no record.
set -u
spool=${CADUCEUS_SLURM_SPOOL:?CADUCEUS_SLURM_SPOOL is not set}
gpu_program=${CADUCEUS_GPU:-caduceus-gpu}
job=${SLURM_JOB_ID:?not run by slurmd}
host=${SLURMD_NODENAME:-$(hostname -s)}
held="$spool/gpus/$job.$host"

case "${SLURM_SCRIPT_CONTEXT:-}" in
prolog_slurmd)
    indexes=$(scontrol show job -d "$job" 2>/dev/null | sed -n 's/.*GRES=[^ ]*(IDX:\([0-9,-]*\)).*/\1/p' | head -1)
    [ -n "$indexes" ] || exit 0
    mkdir -p "$spool/gpus"
    chmod 0700 "$spool/gpus"
    printf '%s\n' "$indexes" > "$held"
    exit 0
    ;;
epilog_slurmd) ;;
*)
    echo "slurm-gpu-hook.sh: run it as slurmd's Prolog and Epilog" >&2
    exit 0
    ;;
esac

[ -f "$held" ] || exit 0
indexes=$(cat "$held")
args=""
for part in $(echo "$indexes" | tr ',' ' '); do
    low=${part%-*}
    high=${part#*-}
    i=$low
    while [ "$i" -le "$high" ]; do
        args="$args --gpu $i"
        i=$((i + 1))
    done
done

mkdir -p "$spool/scrubs"
partial="$spool/scrubs/.$job.$host.partial"
# shellcheck disable=SC2086 # the --gpu options and CADUCEUS_GPU_OPTIONS are words on purpose
scrub=$("$gpu_program" scrub $args --no-reference ${CADUCEUS_GPU_OPTIONS:-})
printf '{"slurmJobID":%s,"host":"%s","scrub":%s}\n' "$job" "$host" "$scrub" > "$partial"
mv "$partial" "$spool/scrubs/$job.$host.json"
rm -f "$held"
# A failed scrub is the control plane's to act on (it cordons the node); the epilog itself succeeds.
exit 0
