"""What each part of pass 1 costs on its own, and the alternatives tried for it.

    python bench/analyse_parts.py CLIP --detector-weights W [--detect-every 4] [--repeat 3] [--int8]

Every figure is the fastest of ``--repeat`` runs, in milliseconds of wall time and of CPU time (all
threads) per frame it applies to:

* decoding at the detector's size (swscale's area filter, as the reader does), against a
  full-size conversion followed by OpenCV's INTER_AREA or INTER_LINEAR resize;
* the tone checks every batch of frames to detect goes through: the brightening or skin toning
  (``faces.tone.for_detection``) and the search for a grey part of a colour frame (``grey_parts``);
* the RetinaFace forward pass on batches of 8 frames with 1 and 2 torch threads (each set inside the
  thread that runs it, as OpenMP requires), and with ``--int8`` the same network quantised to int8
  (torch.ao FX, x86 engine, calibrated on every 20th frame) with its largest output differences;
* dlib's landmark re-fit of one detected face;
* optical-flow following (``faces.motion.face_motions``) with 1 and 2 OpenCV threads;
* the largest change of a 40 px block of the frame between frames ``--detect-every`` apart (levels
  of 255, percentiles): what a "skip the detection when nothing changed" rule would have to beat.

``bench/pipeline.py`` gives the whole pass; this says where its CPU goes.
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from vidrestore.faces.detect import DetectorConfig, create_detector
from vidrestore.faces.motion import face_motions
from vidrestore.faces.retinaface import MEAN_BGR
from vidrestore.faces.tone import for_detection, grey_parts


def best(job: Callable[[], object], repeat: int, per: int) -> tuple[float, float]:
    """Fastest wall and CPU milliseconds per item of ``job()`` over ``repeat`` runs."""
    runs = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        job()
        runs.append(((time.perf_counter() - wall) * 1e3 / per, (time.process_time() - cpu) * 1e3 / per))
    return min(runs)


def show(name: str, figures: tuple[float, float]) -> None:
    print(f"{name:58s} {figures[0]:8.3f} {figures[1]:8.3f}")


def network_input(images: list[np.ndarray]) -> torch.Tensor:
    x = torch.from_numpy(np.stack(images)[..., ::-1].copy()).permute(0, 3, 1, 2).float()
    return x - torch.tensor(MEAN_BGR).view(1, 3, 1, 1)


def on_threads(threads: int, job: Callable[[], object]) -> Callable[[], object]:
    """``job`` run on a worker whose OpenMP team has ``threads`` threads, as pass 1's detector is."""
    def run() -> object:
        with ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(threads,)) as pool:
            return pool.submit(job).result()
    return run


def int8_network(model: torch.nn.Module, calibration: list[np.ndarray]) -> torch.nn.Module:
    from torch.ao.quantization import get_default_qconfig_mapping, quantize_fx

    torch.backends.quantized.engine = "x86"
    fp32 = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    prepared = quantize_fx.prepare_fx(fp32, get_default_qconfig_mapping("x86"), (network_input(calibration[:1]),))
    for i in range(0, len(calibration), 4):
        prepared(network_input(calibration[i:i + 4]))
    return quantize_fx.convert_fx(prepared)


def differences_px(det, quantised: torch.nn.Module, images: list[np.ndarray]) -> str:
    """Largest box and landmark differences (px) between the detector's faces and the same
    detector's with the ``quantised`` network, its own landmarks (no re-fit) in both."""
    fp32, refiner = det.model, det.refiner
    det.refiner = None
    try:
        ours = det.detect(images)
        det.model = quantised
        theirs = det.detect(images)
    finally:
        det.model, det.refiner = fp32, refiner
    pairs = [(a, b) for x, y in zip(ours, theirs) if len(x) == len(y) for a, b in zip(x, y)]
    box = max(float(np.abs(a.box - b.box).max()) for a, b in pairs)
    points = max(float(np.abs(a.landmarks - b.landmarks).max()) for a, b in pairs)
    missed = sum(len(x) != len(y) for x, y in zip(ours, theirs))
    return f"boxes {box:.1f}, landmarks {points:.1f}; frames with another number of faces: {missed} of {len(images)}"


def block_change(a: np.ndarray, b: np.ndarray) -> float:
    """The largest mean absolute difference of a 40 px block (at 320 px) between two grey frames."""
    small = lambda g: cv2.resize(g.astype(np.float32), (g.shape[1] // 10, g.shape[0] // 10), interpolation=cv2.INTER_AREA)
    diff = np.abs(small(a) - small(b))
    return float(cv2.resize(diff, (diff.shape[1] // 4, diff.shape[0] // 4), interpolation=cv2.INTER_AREA).max())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clip", type=Path)
    ap.add_argument("--detector-weights", required=True)
    ap.add_argument("--detect-every", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--int8", action="store_true", help="also time the detector quantised to int8")
    args = ap.parse_args()
    det = create_detector(DetectorConfig(backend="retinaface", weights=args.detector_weights), torch.device("cpu"))
    with av.open(str(args.clip)) as container:
        decoded = list(container.decode(video=0))
    scale = det.input_side / max(decoded[0].width, decoded[0].height)
    size = (round(decoded[0].width * scale), round(decoded[0].height * scale))
    fmt, n = VideoReformatter(), len(decoded)
    print(f"clip: {args.clip.name}, {n} frames, detector input {size[0]}x{size[1]}, fastest of {args.repeat}")
    print(f"{'part':58s} {'ms/frame':>8s} {'CPU ms':>8s}")

    small = lambda f, how="AREA": fmt.reformat(f, format="rgb24", width=size[0], height=size[1], interpolation=how).to_ndarray()
    show("downscale in swscale (area), as the reader does", best(lambda: [small(f) for f in decoded], args.repeat, n))
    for name, how in (("INTER_AREA", cv2.INTER_AREA), ("INTER_LINEAR", cv2.INTER_LINEAR)):
        full_then = lambda: [cv2.resize(fmt.reformat(f, format="rgb24").to_ndarray(), size, interpolation=how) for f in decoded]
        show(f"full-size conversion, then OpenCV {name}", best(full_then, args.repeat, n))

    images = [small(f) for f in decoded]
    every = images[::args.detect_every]
    show("tone check and brightening for the detector (for_detection), batches of 8",
         best(lambda: [for_detection(every[i:i + 8]) for i in range(0, len(every), 8)], args.repeat, len(every)))
    show("grey part of a colour frame (grey_parts), batches of 8",
         best(lambda: [grey_parts(every[i:i + 8]) for i in range(0, len(every), 8)], args.repeat, len(every)))
    batches = [network_input(every[i:i + 8]).contiguous(memory_format=torch.channels_last) for i in range(0, len(every), 8)]
    forward = lambda model, xs: lambda: [model(x) for x in xs]
    with torch.inference_mode():
        for threads in (1, 2):
            show(f"RetinaFace forward, batches of 8, {threads} torch thread(s)",
                 best(on_threads(threads, forward(det.model, batches)), args.repeat, len(every)))
        if args.int8:
            warnings.simplefilter("ignore")  # torch.ao's deprecation notices, on every quantised call
            quantised = int8_network(det.model, images[::20])
            plain = [x.contiguous() for x in batches]
            show("RetinaFace int8, batches of 8, 1 torch thread", best(on_threads(1, forward(quantised, plain)), args.repeat, len(every)))
            print("  int8 against fp32, largest difference in px at the detector's size (its own landmarks): "
                  + differences_px(det, quantised, every))
        faces = [(im, d) for im in every for d in det.detect([im])[0]]
    if det.refiner and faces:
        show("dlib landmark re-fit, per face", best(lambda: [det.refiner(im, d.box) for im, d in faces], args.repeat, len(faces)))

    greys = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in images]
    boxes = {i: [d.box for d in found] for i, found in enumerate(det.detect(every))}
    follow = lambda: [face_motions(greys[i - 1], greys[i], boxes[(i - 1) // args.detect_every]) for i in range(1, n)
                      if boxes[(i - 1) // args.detect_every]]
    threads = cv2.getNumThreads()
    for cv_threads in (1, 2):
        cv2.setNumThreads(cv_threads)
        show(f"optical-flow following, {cv_threads} OpenCV thread(s)", best(follow, args.repeat, n - 1))
    cv2.setNumThreads(threads)

    k = args.detect_every
    changes = [block_change(greys[i], greys[i - k]) for i in range(k, n, k)]
    p10, p50, p90 = np.percentile(changes, [10, 50, 90])
    print(f"largest 40 px block change between frames {k} apart: {p10:.1f} / {p50:.1f} / {p90:.1f} (10th / 50th / 90th percentile)")


if __name__ == "__main__":
    main()
