#!/usr/bin/env bash
# Prepare gpu-data/ for scripts/gpu-session.sh (run here, on the machine without a GPU, once per
# checkout): the packages the GPU image lacks, unpacked and packed as one xz tarball (the wheels
# themselves would not fit in the 64 MiB that travels), and a test clip with the RetinaFace weights
# from ../shared/data. dlib stays behind: its models for people linking and RetinaFace's landmark
# refiner (21 and 63 MB in xz) do not fit, so the GPU session runs without both.
# Then: device run, command "scripts/gpu-session.sh", carry ["gpu-data"], timeout_s 480.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${1:-../shared}
grep -qx '/gpu-data/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/gpu-data/' >> .git/info/exclude; }
"$shared/tools/device-wheels.sh" av diffusers kornia kornia-rs importlib_metadata
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
for w in .whl/*.whl; do unzip -q -o "$w" -d "$site"; done
mkdir -p gpu-data/weights gpu-data/videos
(cd "$site" && tar cf - . | xz -T2 -6) > gpu-data/site.tar.xz
cp "$shared/data/weights/retinaface_mobilenet0.25_Final.pth" gpu-data/weights/
cp "$shared/data/videos/keep_real_1.mp4" gpu-data/videos/
du -ch gpu-data/* | tail -n 1
