#!/usr/bin/env bash
# Install vidrestore (CPU torch), generate the sample clip, and restore it into demo/restored.mp4.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e .
mkdir -p demo
vidrestore sample demo/sample.mp4 --overwrite
vidrestore demo/sample.mp4 demo/restored.mp4 --overwrite --json demo/report.json
