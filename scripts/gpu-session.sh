#!/usr/bin/env bash
# Everything a session with a lent GPU should run first, in one device call (device time is
# scarce and each machine starts bare): the CUDA tests and the GPU throughput benchmarks.
#
# Here, once:   ../shared/tools/device-wheels.sh av diffusers kornia kornia-rs pytest pluggy iniconfig
#               mkdir -p gpu-data/weights gpu-data/videos   # git-ignored through .git/info/exclude
#               cp ../shared/data/weights/retinaface_mobilenet0.25_Final.pth gpu-data/weights/
#               cp ../shared/data/videos/keep_real_1.mp4 gpu-data/videos/
# Device call:  command "scripts/gpu-session.sh", carry [".whl", "gpu-data"]
# Results come back under $OUT: cuda-tests.txt, bench-restore.txt, bench-restore-compiled.txt,
# bench-pipeline-cuda.txt, bench-pipeline-cpu.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py --shared-data gpu-data 2>&1 | tee "$out/cuda-tests.txt"
python3 bench/restore.py --device cuda --frames 64 --batches 1,8,32,64 --presets fast,balanced \
    --dtypes fp32,bf16,fp16 --tracks 4 --window 16 2>&1 | tee "$out/bench-restore.txt"
python3 bench/restore.py --device cuda --frames 64 --batches 1,64 --presets fast --dtypes bf16 \
    --compile inductor 2>&1 | tee "$out/bench-restore-compiled.txt"
for device in cuda cpu; do  # the pipeline around the model against decode+encode, on this machine's many cores
    python3 bench/pipeline.py gpu-data/videos/keep_real_1.mp4 --device $device --detector retinaface \
        --detector-weights gpu-data/weights/retinaface_mobilenet0.25_Final.pth --detect-every 4 --repeat 5 \
        2>&1 | tee "$out/bench-pipeline-$device.txt"
done
