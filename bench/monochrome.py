"""Black-and-white, toned and dark footage (vidrestore.faces.tone): what tells it apart, whether
RetinaFace finds its faces, and whether restored faces keep its tone.

    python bench/monochrome.py --data ../shared/data [--faces 200] [--spread-faces 2000] [--restore] [--only-faces]

* **Tone spread** (what :func:`tone_spread` leaves of a picture's chroma once a quadratic in luma
  is fitted, 8-bit levels): its distribution over CelebA and UTKFace colour photos, each of
  CodeFormer's grey faces, and the KEEP clips in colour, made grey, sepia and blue, and made grey
  but for a part of them (a logo, a border, the bottom of the picture); and how many fall under
  ``MONOCHROME_LEVELS``; beside it, what the fit leaves over the whole picture alone.
* **Faces' tone spread** (:func:`face_tone_spread`, what pass 1 measures of each track's faces):
  over the faces RetinaFace finds in the same photos and in every 5th frame of the KEEP clips, in
  colour (also under-exposed) and made grey, sepia and blue, and the KEEP clips grey inside a coloured border a
  quarter of the picture wide, and shrunk to 0.2 and 0.3 of their size onto a grey 640x360
  ground, in colour and made grey and sepia (a colour face on a small part of a grey picture, which
  the picture's core leaves out); and how many colour faces fall under ``COLOUR_FACE_LEVELS``.
* **Detection**: frames with a face found by RetinaFace MobileNet-0.25, and frames with more than
  one, on every 5th frame of both KEEP clips (one face each) and on ``--faces`` CelebA photos, in
  colour, at half and 0.3 of their exposure, and made grey, sepia and blue (the KEEP clips also grey
  but for a logo, a border or the bottom of the picture, and inside a border an eighth of the width on
  each side, also with noise of 4 levels in each channel); and how many colour frames are shown
  twice for a grey part; for the KEEP clips,
  how far dlib's re-fitted landmarks moved from the colour frame's. "plain" shows the detector
  and the landmark predictor the frames as they are (as before vidrestore.faces.tone),
  "for_detection" as they now see them (with a grey part of a colour frame shown again, skin-toned).
* ``--restore``: the first 24 frames of keep_real_1 made sepia and blue, restored by the shipped
  model with and without :func:`keep_tone`. Per clip: how far the output's chroma lies from the
  input's own tone curve, where restoration changed the picture (luma moved by more than 2
  levels), as 50th/99th/99.9th percentiles of the largest channel's distance in levels; and the
  same for the input against itself (what coding leaves).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np
import torch

import vidrestore.pipeline.restoring as pass_two
from vidrestore.cli import main as vidrestore_main
from vidrestore.faces import detect
from vidrestore.faces.tone import COLOUR_FACE_LEVELS, LUMA, MONOCHROME_LEVELS, _basis, _luma, face_tone_spread, thumbnails, tone_curves, tone_spread

TONES = {"grey": ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0)), "sepia": ((1.0, 0.82, 0.60), (0.07, 0.05, 0.02)),
         "blue": ((0.55, 0.72, 1.0), (0.0, 0.02, 0.05))}
VARIANTS = ("colour", "x0.5", "x0.3", "grey", "sepia", "blue")


def variant(image: np.ndarray, name: str) -> np.ndarray:
    """``image`` (RGB uint8) in colour, under-exposed (x0.5, x0.3), or made monochrome with a tone of :data:`TONES`."""
    x = image.astype(np.float32) / 255
    if name.startswith("x"):
        x = x * float(name[1:])
    elif name in TONES:
        gain, offset = (np.asarray(v, np.float32) for v in TONES[name])
        x = (x @ np.asarray(LUMA, np.float32))[..., None] * gain + offset
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def clip_frames(path: Path, every: int = 5, limit: int = 250) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for i, f in zip(range(limit), c.decode(video=0))][::every]


def whole_spread(image: np.ndarray) -> float:
    """What the fit leaves over the whole picture alone (the tone spread before its core counted)."""
    return float(tone_curves(thumbnails(image[None]))[1][0])


def partly_coloured(image: np.ndarray, name: str) -> np.ndarray:
    """``image`` (RGB uint8) made grey but for a part of it: a coloured logo on 2% or 5% of it in a
    corner, a coloured border 3% or 6% of its width, or its bottom 10% or 20% left in colour; a
    name ending in "noise N": then with white noise of N levels in each channel (a scan's, a capture's)."""
    if " noise " in name:
        name, sigma = name.split(" noise ")
        noisy = partly_coloured(image, name) + np.random.default_rng(0).normal(0, float(sigma), image.shape)
        return np.clip(noisy, 0, 255).round().astype(np.uint8)
    out, (height, width) = variant(image, "grey"), image.shape[:2]
    kind, share = name.split()
    share = float(share.rstrip("%")) / 100
    if kind == "logo":
        side = int(np.sqrt(share) * width)
        out[8:8 + side, width - 8 - side:width - 8] = (220, 20, 20)
    elif kind == "border":
        b = max(1, int(share * width))
        for part in (np.s_[:, :b], np.s_[:, -b:], np.s_[:b], np.s_[-b:]):
            out[part] = (30, 60, 200)
    else:
        keep = int(height * (1 - share))
        out[keep:] = image[keep:]
    return out


PARTS = ("logo 2%", "logo 5%", "border 3%", "border 6%", "bottom 10%", "bottom 20%")
GROUNDS = ("small 0.2", "small 0.3", "small 0.3 grey", "small 0.3 sepia")


def on_grey_ground(image: np.ndarray, name: str) -> np.ndarray:
    """``image`` shrunk ("small 0.2": to 0.2 of its size) onto a mid-grey 640x360 picture, in
    colour or made monochrome with a tone of :data:`TONES` ("small 0.3 grey")."""
    _, scale, *tone = name.split()
    small = cv2.resize(image, None, fx=float(scale), fy=float(scale), interpolation=cv2.INTER_AREA)
    out = np.full((360, 640, 3), 128, np.uint8)
    out[100:100 + small.shape[0], 250:250 + small.shape[1]] = small
    return variant(out, tone[0]) if tone else out


def spreads(data: Path, count: int) -> None:
    print(f"tone spread (levels); monochrome under {MONOCHROME_LEVELS}; in brackets, over the whole picture alone")
    for name in ("celeba_align", "utkface"):
        files = sorted((data / "train_hq" / name).glob("*.jpg"))[::5][:count]
        images = [cv2.imread(str(f))[..., ::-1].copy() for f in files]
        values = np.array([tone_spread(im) for im in images])
        whole = np.array([whole_spread(im) for im in images])
        lows = ", ".join(f"{files[i].name} {values[i]:.2f}" for i in np.argsort(values)[:4])
        print(f"  {name}: {len(values)} photos, percentiles 0.1/1/5/50: {np.percentile(values, [0.1, 1, 5, 50]).round(2)}, "
              f"under: {(values < MONOCHROME_LEVELS).sum()} ({(whole < MONOCHROME_LEVELS).sum()}) (lowest: {lows})")
    grey = sorted((data / "faces_lq" / "codeformer_gray_faces").glob("*.png"))
    print("  codeformer_gray_faces:", "; ".join(f"{f.stem} {tone_spread(cv2.imread(str(f))[..., ::-1].copy()):.2f}" for f in grey))
    for clip in ("keep_real_1", "keep_real_2"):
        frames = clip_frames(data / "videos" / f"{clip}.mp4", every=1, limit=60)
        for name in ("colour", *TONES, *PARTS):
            shown = [variant(f, name) if name in ("colour", *TONES) else partly_coloured(f, name) for f in frames]
            values, whole = [tone_spread(f) for f in shown], [whole_spread(f) for f in shown]
            print(f"  {clip} {name}: min {min(values):.2f}, median {np.median(values):.2f}, max {max(values):.2f} "
                  f"({min(whole):.2f}, {np.median(whole):.2f}, {max(whole):.2f})")


def face_spreads(data: Path, weights: Path, count: int) -> None:
    """The tone spread of the faces RetinaFace finds (:func:`face_tone_spread`, as pass 1 measures a
    track's faces), in colour (also at half and 0.3 of its exposure) and made grey, sepia and blue; the KEEP clips also made grey inside
    a border a quarter of the picture wide in colour (taken for colour as a picture)."""
    detector = detect.create_detector(detect.DetectorConfig(backend="retinaface", weights=str(weights)), torch.device("cpu"))
    sets = {name: [cv2.imread(str(f))[..., ::-1].copy() for f in sorted((data / "train_hq" / name).glob("*.jpg"))[::5][:count]]
            for name in ("celeba_align", "utkface")}
    sets.update({clip: clip_frames(data / "videos" / f"{clip}.mp4") for clip in ("keep_real_1", "keep_real_2")})
    print(f"tone spread of the faces found (levels); a track is monochrome when its faces' median is under {MONOCHROME_LEVELS}")
    for name, images in sets.items():
        sized = detector.sized_for(max(images[0].shape[:2]), 32)
        cells = []
        for v in ("colour", "x0.5", "x0.3", *TONES, *(("border 25%", *GROUNDS) if name.startswith("keep") else ())):
            values, pictures = [], []
            for image in images:
                shown = on_grey_ground(image, v) if v in GROUNDS else partly_coloured(image, "border 12.5%") \
                    if v == "border 25%" else variant(image, v)
                found = detector.sized_for(max(shown.shape[:2]), 32).detect([shown])[0] if v in GROUNDS else sized.detect([shown])[0]
                values += [x for d in found if (x := face_tone_spread(shown, d.box)) is not None]
                pictures.append(tone_spread(shown))
            if v == "border 25%" or v in GROUNDS:
                cells.append(f"{v}: picture median {np.median(pictures):.2f}, faces min {min(values):.2f}, median {np.median(values):.2f}, "
                             f"max {max(values):.2f} ({len(values)} faces)")
            elif v in ("colour", "x0.5", "x0.3"):
                cells.append(f"{v}: {len(values)} faces, percentiles 0.1/1/5/50 {np.percentile(values, [0.1, 1, 5, 50]).round(2)}, "
                             f"under {(np.asarray(values) < MONOCHROME_LEVELS).sum()}, "
                             f"under {COLOUR_FACE_LEVELS:g}: {(np.asarray(values) < COLOUR_FACE_LEVELS).sum()}")
            else:
                cells.append(f"{v} max {max(values):.2f}")
        print(f"  {name}: " + "; ".join(cells))


def detections(data: Path, weights: Path, count: int) -> None:
    detector = detect.create_detector(detect.DetectorConfig(backend="retinaface", weights=str(weights)), torch.device("cpu"))
    sets = {clip: clip_frames(data / "videos" / f"{clip}.mp4") for clip in ("keep_real_1", "keep_real_2")}
    sets["celeba"] = [cv2.imread(str(f))[..., ::-1].copy() for f in sorted((data / "train_hq" / "celeba_align").glob("*.jpg"))[::30][:count]]
    as_now, grey_now = detect.for_detection, detect.grey_parts

    print("frames with a face found / with more than one (RetinaFace MobileNet-0.25, score > 0.8);")
    print("KEEP clips: then the median over frames of the largest landmark shift from the colour frame's (px)")
    for shown, prepare, grey in (("plain", lambda images: images, lambda images: {}), ("for_detection", as_now, grey_now)):
        detect.for_detection, detect.grey_parts = prepare, grey
        for name, images in sets.items():
            cells = []
            for v in VARIANTS if name == "celeba" else (*VARIANTS, "logo 5%", "border 3%", "bottom 10%", "border 12.5%",
                                                         "border 12.5% noise 4"):
                seen = [variant(im, v) if v in VARIANTS else partly_coloured(im, v) for im in images]
                found = [detector.sized_for(max(im.shape[:2]), 32).detect([im])[0] for im in seen]
                if v == "colour":
                    colour = found
                shifts = [np.abs(f[0].landmarks - c[0].landmarks).max() for f, c in zip(found, colour) if f and c]
                shift = f" {np.median(shifts):.1f}" if name != "celeba" and v != "colour" and shifts else ""
                cells.append(f"{v} {sum(len(f) > 0 for f in found)}/{len(images)} ({sum(len(f) > 1 for f in found)}){shift}")
            print(f"  {shown:13s} {name:11s} " + "  ".join(cells))
    detect.for_detection, detect.grey_parts = as_now, grey_now
    print("colour frames shown a second time, their grey part skin-toned (grey_parts):",
          ", ".join(f"{name} {sum(bool(grey_now([im])) for im in images)}/{len(images)}" for name, images in sets.items()))
    print("dlib's landmarks in the boxes found, on the frame as it is against as for_detection shows it:")
    print("median (max) over frames of the largest landmark shift from the colour frame's (px)")
    for name in ("keep_real_1", "keep_real_2"):
        sized = detector.sized_for(max(sets[name][0].shape[:2]), 32)
        colour = [sized.detect([im])[0][0].landmarks for im in sets[name]]
        cells = []
        for v in ("x0.5", "x0.3", "grey"):
            images = [variant(im, v) for im in sets[name]]
            boxes = [found[0].box for found in sized.detect(images)]
            for label, seen in (("as it is", images), ("as shown", [as_now([im])[0] for im in images])):
                shifts = [np.abs(sized.refiner(im, box) - c).max() for im, box, c in zip(seen, boxes, colour)]
                cells.append(f"{v} {label} {np.median(shifts):.1f} ({max(shifts):.1f})")
        print(f"  {name:11s} " + "  ".join(cells))


def off_tone(source: Path, output: Path) -> np.ndarray:
    """Percentiles 50/99/99.9 of the output's chroma distance (levels, largest channel) from each
    input frame's tone curve, where the output's luma differs from the input's by over 2 levels
    (everywhere when ``output`` is ``source``)."""
    distances = []
    with av.open(str(source)) as a, av.open(str(output)) as b:
        for x, y in zip(a.decode(video=0), b.decode(video=0)):
            before = torch.from_numpy(x.to_ndarray(format="rgb24")).float() / 255
            after = torch.from_numpy(y.to_ndarray(format="rgb24")).float() / 255
            coefficients, _ = tone_curves(before.permute(2, 0, 1)[None])
            changed = ((_luma(after) - _luma(before)).abs() > 2 / 255) if output != source else torch.ones(before.shape[:2], dtype=torch.bool)
            rgb = after[changed]
            luma = _luma(rgb)
            distances.append((rgb - luma[:, None] - _basis(luma) @ coefficients[0]).abs().amax(1) * 255)
    return torch.quantile(torch.cat(distances)[::3], torch.tensor([0.5, 0.99, 0.999])).numpy()


def restoration(data: Path, weights: Path) -> None:
    frames = clip_frames(data / "videos" / "keep_real_1.mp4", every=1, limit=24)
    as_now = pass_two.keep_tone
    print("restored faces' chroma off the input's tone curve, percentiles 50/99/99.9 (levels)")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("sepia", "blue"):
            source = Path(tmp) / f"{name}.mp4"
            with av.open(str(source), "w") as out:
                stream = out.add_stream("libx264", rate=20)
                stream.width, stream.height, stream.pix_fmt, stream.options = frames[0].shape[1], frames[0].shape[0], "yuv420p", {"crf": "18"}
                for image in frames:
                    out.mux(stream.encode(av.VideoFrame.from_ndarray(variant(image, name), format="rgb24")))
                out.mux(stream.encode(None))
            print(f"  {name} input itself: {off_tone(source, source).round(1)}")
            for label, keep in (("without keep_tone", lambda restored, reference: restored), ("with keep_tone", as_now)):
                pass_two.keep_tone = keep
                output = Path(tmp) / f"{name}_{label.split()[0]}.mp4"
                vidrestore_main([str(source), str(output), "--quiet", "--detector", "retinaface", "--detector-weights", str(weights)])
                print(f"  {name} {label}: {off_tone(source, output).round(1)}")
    pass_two.keep_tone = as_now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--detector-weights", type=Path, default=None, help="default: DATA/weights/retinaface_mobilenet0.25_Final.pth")
    parser.add_argument("--faces", type=int, default=200, help="CelebA photos for the detection table")
    parser.add_argument("--spread-faces", type=int, default=2000, help="CelebA and UTKFace photos each for the spread table")
    parser.add_argument("--restore", action="store_true", help="also restore the toned clips (about a minute on 2 cores)")
    parser.add_argument("--only-faces", action="store_true", help="only the tone spread of faces found (--spread-faces photos each)")
    args = parser.parse_args()
    weights = args.detector_weights or args.data / "weights" / "retinaface_mobilenet0.25_Final.pth"
    face_spreads(args.data, weights, args.spread_faces)
    if args.only_faces:
        return
    spreads(args.data, args.spread_faces)
    detections(args.data, weights, args.faces)
    if args.restore:
        restoration(args.data, weights)


if __name__ == "__main__":
    main()
