#!/usr/bin/env bash
# Prepare what a device call needs, here, on the machine without a GPU (once per checkout).
#
#   scripts/gpu-prepare.sh [SHARED]        gpu-data/ for scripts/gpu-session.sh: the packages the GPU
#       image lacks (av, diffusers, kornia), unpacked and packed as one xz tarball (the wheels
#       themselves would not fit in the 64 MiB that travels), and a test clip with the RetinaFace
#       weights from SHARED/data. dlib stays behind: its models for people linking and RetinaFace's
#       landmark refiner (21 and 63 MB in xz) do not fit, so the GPU session runs without both.
#       Then: device run, command "scripts/gpu-session.sh", carry ["gpu-data"], timeout_s 480.
#   scripts/gpu-prepare.sh train           gpu-train/ for scripts/gpu-train.sh: diffusers and kornia
#       only (training needs no PyAV), and the CelebA packs of MODEL_CARD.md (runs/data/celeba128.npz
#       and celeba_rest128.npz, made first with its commands) re-encoded as WebP q86, 4 KB a face.
#       Then: device run, command "scripts/gpu-train.sh", carry ["gpu-train"], timeout_s 520.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=session
if [ "${1:-}" = train ]; then mode=train; shift; fi
shared=${1:-../shared}
folder=gpu-data
[ $mode = train ] && folder=gpu-train
grep -qx "/$folder/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo "/$folder/" >> .git/info/exclude; }
packages=(diffusers kornia kornia-rs importlib_metadata)
[ $mode = session ] && packages+=(av)
"$shared/tools/device-wheels.sh" "${packages[@]}"
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
for p in "${packages[@]}"; do unzip -q -o .whl/"${p//-/_}"-*.whl -d "$site"; done
mkdir -p "$folder"
if [ $mode = train ]; then
    (cd "$site" && tar cf - . | xz -T2 -6) > gpu-train/site-train.tar.xz
    for pack in celeba128 celeba_rest128; do
        vidrestore train pack "runs/data/$pack.npz" --out "gpu-train/$pack.npz" --quality 86 --quiet
    done
else
    (cd "$site" && tar cf - . | xz -T2 -6) > gpu-data/site.tar.xz
    mkdir -p gpu-data/weights gpu-data/videos
    cp "$shared/data/weights/retinaface_mobilenet0.25_Final.pth" gpu-data/weights/
    cp "$shared/data/videos/keep_real_1.mp4" gpu-data/videos/
fi
du -ch "$folder"/* | tail -n 1
