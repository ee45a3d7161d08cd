#!/usr/bin/env bash
# Everything a session with a lent GPU should run first, in one device call (device time is
# scarce and each machine starts bare): the CUDA tests and the GPU throughput benchmarks.
#
# Here, once: scripts/gpu-prepare.sh (the GPU image lacks av, diffusers and kornia; it packs
# them with a test clip and weights into gpu-data/, which .git/info/exclude keeps out of git).
# Device call:  command "scripts/gpu-session.sh", carry ["gpu-data"], timeout_s 480 (DEADLINE=S shortens it)
# Results come back under $OUT, one file per step. Each step is cut off so that the whole script
# ends within ${DEADLINE:-420} s; the steps that matter most run first: the tests, then the pipeline
# on 16 cores and the overlapped batch, then the restorer's throughput.
# The pipeline benchmark leaves people linking and RetinaFace's landmark refiner out: they need
# dlib's face descriptor and 68-point models (22 and 99 MB; 21 and 63 MB in xz), which do not fit
# beside the wheels. On 2 cores linking cost less than run-to-run noise, and the refiner takes
# about 3 ms a detected face.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
deadline=${DEADLINE:-420}
mkdir -p "$out" /tmp/site
tar xJf gpu-data/site.tar.xz -C /tmp/site || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1

step() {  # step NAME MAX_SECONDS COMMAND...: run, log to $out/NAME.txt, stop at MAX or at the deadline
    local name=$1 most=$2 left=$((deadline - SECONDS))
    shift 2
    ((left < most)) && most=$left
    if ((most < 10)); then echo "== $name: skipped, the deadline is near" | tee "$out/$name.txt"; return; fi
    echo "== $name (at most ${most} s, ${SECONDS} s in)"
    timeout "$most" "$@" 2>&1 | tee "$out/$name.txt"
    echo "== $name: rc ${PIPESTATUS[0]}, ${SECONDS} s in"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, av, diffusers, kornia; print('torch', torch.__version__, 'av', av.__version__, 'diffusers', diffusers.__version__, 'kornia', kornia.__version__)" | tee -a "$out/gpu.txt"
step cuda-tests 90 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py --shared-data gpu-data
# the pipeline around the model against decode+encode, on this machine's many cores: with the
# model on the GPU, its faces cropped and pasted on the CPU (the default) or on the GPU; all on the CPU
for run in "cuda cpu" "cuda model" "cpu cpu"; do
    set -- $run
    step pipeline-$1-glue-$2 45 python3 bench/pipeline.py gpu-data/videos/keep_real_1.mp4 --device $1 --glue-device $2 \
        --detector retinaface --detector-weights gpu-data/weights/retinaface_mobilenet0.25_Final.pth --detect-every 4 --repeat 3 \
        --no-people --no-refine
done
# a batch analyses the next item while it restores this one when the model runs on the GPU
# (bench/batch.py; measured on 2 CPU cores only, where it is off with a model): three items of the
# shipped model, whose identity embedding needs dlib and its descriptor model (21 MB in xz), which
# do not fit beside the wheels: skipped unless the machine has them
sed -e 's/link: true/link: false/' -e 's/refine_landmarks: true/refine_landmarks: false/' configs/pipeline.yaml > /tmp/gpu-pipeline.yaml
if python3 -c "import dlib, face_recognition_models" 2>/dev/null; then
    step batch-cuda 120 python3 bench/batch.py gpu-data/videos/keep_real_1.mp4 --items 3 --repeat 2 --device cuda --model flipnet-small \
        --config /tmp/gpu-pipeline.yaml --detector retinaface --detector-weights gpu-data/weights/retinaface_mobilenet0.25_Final.pth
else
    echo "== batch-cuda: skipped, no dlib here (the shipped model's identity embedding needs it)" | tee "$out/batch-cuda.txt"
fi
step restore-256 60 python3 bench/restore.py --device cuda --architecture small@256 --frames 64 --batches 1,64 \
    --presets fast --dtypes bf16,fp16
step parsing-cuda 40 python3 bench/parsing.py --device cuda --repeat 3
step restore-128 60 python3 bench/restore.py --device cuda --frames 64 --batches 1,8,32,64 --presets fast,balanced \
    --dtypes fp32,bf16 --tracks 4 --window 16
