#!/usr/bin/env bash
# The GPU check: on one H100/H200 in at most 8 minutes, one table of
#   - benchmarks/train_step.py --model sd15 --flops: samples/s, MFU, ratio to the reference loop;
#   - benchmarks/sample.py --model sd15: images/s, ratio to the pipeline-style loop;
#   - a pipeline smoke: profiles/busi-gpu.yaml (bf16) on the phantom, step counts cut by
#     ci/gpu-smoke.yaml: ingest, controls, train-base, train-controlnet, generate;
#   - with two GPUs or more, train-base launched as two processes (accelerate, NCCL).
# Each piece has its own time limit (the sum stays under 8 minutes) and its log in a temp folder.
#
#   scripts/gpu-check.sh            needs a CUDA GPU: without one it stops at once, saying so
#   scripts/gpu-check.sh --dry-run  on the CPU, every piece at toy size: checks that each one starts
#                                   and runs (its figures mean nothing)
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
python=${PYTHON:-$( [[ -x .venv/bin/python ]] && echo "$repo/.venv/bin/python" || command -v python3 )}
dry=0
case "${1:-}" in
    --dry-run) dry=1 ;;
    "") ;;
    *) echo "usage: scripts/gpu-check.sh [--dry-run]" >&2; exit 2 ;;
esac

gpus=$("$python" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)' \
       2>/dev/null) || { echo "gpu-check: $python cannot import torch; run \`make install\` first" >&2; exit 2; }
if (( dry == 0 && gpus == 0 )); then
    seen=$(command -v nvidia-smi >/dev/null && nvidia-smi -L 2>&1 | head -n 2 || echo "no nvidia-smi")
    echo "gpu-check: no CUDA GPU visible to torch (torch.cuda.is_available() is False; nvidia-smi: $seen)." >&2
    echo "gpu-check: nothing to measure here; \`scripts/gpu-check.sh --dry-run\` starts every piece on the CPU." >&2
    exit 2
fi
logs=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}"
unset MLFLOW_TRACKING_URI  # the smoke logs to its own store, never to a team's server
rows=()

# piece NAME SECONDS COMMAND...: run COMMAND with a time limit, output in $logs/NAME.log; the status
# cell of the table is left in $state
piece() {
    local name=$1 limit=$2 began=$SECONDS code
    shift 2
    timeout --kill-after=10 "$limit" "$@" >"$logs/$name.log" 2>&1
    code=$?
    if (( code == 124 || code == 137 )); then state="TIMEOUT ${limit}s"
    elif (( code != 0 )); then state="FAILED ($code)"
    else state="ok $((SECONDS - began))s"
    fi
    return "$code"
}

# first NAME PATTERN: the first line of $logs/NAME.log matching the extended regex, or -
first() { awk -v p="$2" '$0 ~ p { sub(/^ +/, ""); print; found = 1; exit } END { if (!found) print "-" }' \
    "$logs/$1.log"; }

if (( dry )); then
    train_args=(--model tiny-latent --steps 2 --rounds 1 --flops)
    sample_args=(--model default --images 2 --steps 2 --rounds 1 --guidance 2 --threads 1)
    smoke_set=(--set data.image_size=32 --set phantom.patients_per_class=4 --set generate.per_class=4
               --set train_base.steps=2 --set train_controlnet.steps=2 --set train_base.batch_size=4
               --set train_controlnet.batch_size=4 --set train_base.validate_every=2
               --set train_controlnet.validate_every=2 --set train_base.num_validation=3
               --set train_controlnet.num_validation=3 --set sampling.batch_size=8
               --set generate.sampling.batch_size=8)
    limits=(600 600 900)
else
    train_args=(--model sd15 --flops --steps 15 --rounds 2)
    sample_args=(--model sd15 --images 16 --steps 20 --rounds 2 --guidance 2)
    smoke_set=()
    limits=(170 80 140)
fi

piece train_step "${limits[0]}" "$python" benchmarks/train_step.py "${train_args[@]}"
rows+=("train step ($( ((dry)) && echo tiny-latent || echo sd15 ), ControlNet)|$state|ours \
$(first train_step '^ours ' | sed -E 's/^ours +: +([0-9.]+) .*/\1/') samples/s, ratio to reference \
$(first train_step '^ratio' | sed -E 's/.*: //'), MFU $(first train_step '^MFU ours' | sed -E 's/^MFU ours: ([^ ]+) .*/\1/') \
(reference $(first train_step '^MFU reference' | sed -E 's/^MFU reference: ([^ ]+) .*/\1/'))")

piece sample "${limits[1]}" "$python" benchmarks/sample.py "${sample_args[@]}"
rows+=("sampling ($( ((dry)) && echo default || echo sd15 ), guidance 2)|$state|ours \
$(first sample 'ours +:' | sed -E 's/.*: +([0-9.]+) images\/s.*/\1/') images/s, ratio to pipeline loop \
$(first sample 'ratio ours/reference' | sed -E 's/.*reference: ([0-9.]+);.*/\1/')")

smoke=$logs/smoke
mkdir -p "$smoke" && cp params.yaml "$smoke/params.yaml"
{   # the smoke as a script, so that one time limit covers all its stages
    echo "set -euo pipefail; cd $(printf '%q' "$smoke")"
    echo "$(printf '%q ' "$python" -m controlbreast overlay "$repo/profiles/busi-gpu.yaml" \
        "$repo/ci/gpu-smoke.yaml" "${smoke_set[@]}" --params params.yaml)"
    for stage in ingest controls train-base train-controlnet generate; do
        echo "echo '== $stage'; $(printf '%q ' "$python" -m controlbreast "$stage" --params params.yaml)"
    done
} >"$logs/smoke.sh"
piece smoke "${limits[2]}" bash "$logs/smoke.sh"
rows+=("pipeline smoke (busi-gpu, phantom, bf16)|$state|\
$(first smoke '^train_base:' | sed -E 's/ -> .*//'); $(first smoke '^train_controlnet:' | sed -E 's/ -> .*//')")

if (( dry == 0 && gpus >= 2 )) && [[ -f "$smoke/models/base/backend.json" ]]; then
    cd "$smoke"
    piece two_process 60 "$python" -m accelerate.commands.launch --multi_gpu --num_processes 2 \
        -m controlbreast train-base --params params.yaml
    cd "$repo"
    rows+=("train-base, 2 processes (NCCL)|$state|\
$(first two_process '^train_base:' | sed -E 's/ -> .*//')")
else
    why=$( ((dry)) && echo "dry run" || echo "$gpus GPU(s), or no smoke model")
    rows+=("train-base, 2 processes (NCCL)|skipped: $why|-")
fi

device=$( ((dry)) && echo "CPU (dry run: figures mean nothing)" || \
          "$python" -c 'import torch; print(torch.cuda.get_device_name())')
echo
echo "GPU check on $device, $(git rev-parse --short HEAD 2>/dev/null || echo "no git"), logs in $logs"
printf '| %-42s | %-18s | %s |\n' "check" "status" "figures"
printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..44})" "$(printf -- '-%.0s' {1..20})" "---------"
failed=0
for row in "${rows[@]}"; do
    IFS='|' read -r name state figures <<<"$row"
    printf '| %-42s | %-18s | %s |\n' "$name" "$state" "$figures"
    [[ $state == ok* || $state == skipped* ]] || failed=1
done
exit "$failed"
