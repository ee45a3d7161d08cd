#!/usr/bin/env bash
# Train flipnet-small on a lent GPU in one device call, fine-tuning the shipped weights on the
# CelebA packs, and bring the EMA weights back under $OUT.
#
# Here, once: scripts/gpu-prepare.sh train (diffusers and kornia packed, and the two CelebA packs
# re-encoded as WebP q86 packs: the 49 KB raw faces would not fit in the 64 MiB that travels).
# Device call: command "scripts/gpu-train.sh", carry ["gpu-train"], timeout_s 480 (BUDGET=S: seconds of training).
# A 60-step probe measures the step time first, so that the cosine decay ends where the time does;
# the run stops at BUDGET + 60 s regardless (--time-limit), checkpointed.
# Back here: cat $OUT/ema.part* > ema.safetensors, then `vidrestore train export` on a folder holding it
# as checkpoint/ema.safetensors.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
budget=${BUDGET:-330}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
if ! python3 -c "import diffusers, kornia" 2>/dev/null; then  # the GPU image lacks them
    mkdir -p /tmp/site && tar xJf gpu-train/site-train.tar.xz -C /tmp/site || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$out/gpu.txt"

train=(python3 cli.py train run --config small --device "${DEVICE:-cuda}"
       --set hq_pack=gpu-train/celeba128.npz --set "extra_packs=[gpu-train/celeba_rest128.npz]"
       --set init_weights=flipnet-small --set batch_size="${BATCH:-64}" --set mixed_precision=bf16 --set num_threads=8
       --set ema_decay=0.998 --set warmup_steps=100 --set log_every=20 --set checkpoint_every=2000 --set validate_every=1000)
"${train[@]}" --set out_dir=runs/probe --steps 60 2>&1 | tee "$out/probe.txt"
per_step=$(python3 -c "import csv; print(list(csv.DictReader(open('runs/probe/log.csv')))[-1]['sec_per_step'])") || exit 1
steps=$(python3 -c "print(max(200, int($budget / $per_step)))")
echo "== probe: $per_step s a step; training $steps steps" | tee -a "$out/probe.txt"
"${train[@]}" --set out_dir=runs/gpu --steps "$steps" --set decay_from_step=100 --set decay_steps=$((steps - 100)) \
    --time-limit "$(python3 -c "print(($budget + 60) / 60)")" 2>&1 | tee "$out/train.txt"
split -b 15M -d runs/gpu/checkpoint/ema.safetensors "$out/ema.part"
tar cf "$out/logs.tar" -C runs/gpu log.csv val
ls -la "$out"
