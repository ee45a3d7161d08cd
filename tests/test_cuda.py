"""The CUDA paths against the CPU ones: autocast, channels-last, kornia warps, batched detection.

They need a CUDA GPU and are skipped elsewhere; `scripts/gpu-session.sh` runs them on one.
"""

import numpy as np
import pytest
import torch
from conftest import shared_file

from vidrestore.diffusion.sampler import SamplerConfig
from vidrestore.faces.align import align_faces, template
from vidrestore.faces.paste import paste_faces
from vidrestore.models.flipnet import Flipnet, load_config
from vidrestore.restore import FlipnetRestorer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu-session.sh runs these on one)")
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def exact_fp32():
    """Ampere and later GPUs run fp32 convolutions in TF32 (a 10-bit mantissa) unless told not to; the
    equality checks here are about which frames meet which, so they compare true fp32 results."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _restorer(device: torch.device, dtype: torch.dtype) -> FlipnetRestorer:
    torch.manual_seed(0)
    model = Flipnet(load_config("tiny"))
    torch.nn.init.normal_(model.conv_out.weight, std=0.05)  # zero-initialised, the output would not depend on the input
    return FlipnetRestorer(model, SamplerConfig(steps=3, start_step=200), device, None, "tiny", dtype=dtype)


def _crops(device: torch.device, seed: int = 1) -> torch.Tensor:
    return torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(seed)).to(device)


def _restore(device: torch.device, dtype: torch.dtype, batch: int) -> torch.Tensor:
    restorer, crops = _restorer(device, dtype), _crops(device)
    ctx = restorer.start_track(0, crops)
    return torch.cat([restorer.restore(crops[i:i + batch], ctx) for i in range(0, len(crops), batch)]).cpu()


def test_cuda_fp32_matches_the_cpu():
    assert (_restore(CUDA, torch.float32, 8) - _restore(torch.device("cpu"), torch.float32, 8)).abs().max() < 1e-3


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_stays_close_to_fp32(dtype):
    assert (_restore(CUDA, dtype, 8) - _restore(CUDA, torch.float32, 8)).abs().mean() < 0.01


def test_a_track_in_batches_equals_one_batch_on_cuda():
    assert (_restore(CUDA, torch.float32, 3) - _restore(CUDA, torch.float32, 8)).abs().max() < 1e-4


def test_tracks_sharing_a_batch_equal_tracks_alone_on_cuda():
    a, b = _crops(CUDA, 1), _crops(CUDA, 2)
    alone = _restorer(CUDA, torch.float32)
    expected = [alone.restore(a, alone.start_track(0, a)), alone.restore(b, alone.start_track(1, b))]
    joint = _restorer(CUDA, torch.float32)
    got = joint.restore_tracks([(a, joint.start_track(0, a)), (b, joint.start_track(1, b))])
    assert not torch.allclose(expected[0], expected[1], atol=1e-2)
    assert all((g - e).abs().max() < 1e-4 for g, e in zip(got, expected))


def test_a_windows_occlusion_masks_on_cuda_match_the_cpus():
    from vidrestore.diffusion.flow import flows_to_previous

    rng = np.random.default_rng(4)
    tex = (rng.random((72, 72, 3)) * 255).astype(np.uint8)
    frames = np.stack([np.roll(tex, 2 * i, axis=1)[8:56, 8:56] for i in range(6)])
    (flows_cpu, valid_cpu), (flows_gpu, valid_gpu) = flows_to_previous(frames), flows_to_previous(frames, CUDA)
    assert flows_gpu.is_cuda and torch.equal(flows_gpu.cpu(), flows_cpu)
    assert (valid_gpu.cpu() != valid_cpu).float().mean() < 1e-3  # a pixel on the test's edge may fall either way


def test_kornia_align_and_paste_match_opencv():
    frame = torch.randint(0, 256, (3, 120, 160), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    lm = torch.from_numpy(template(70) + np.array([40, 20], np.float32))[None]
    crops_cpu, m = align_faces(frame, lm, 128)
    crops_gpu, _ = align_faces(frame.to(CUDA), lm, 128)
    assert (crops_gpu.cpu() - crops_cpu).abs().mean() < 0.01
    restored = torch.rand(crops_cpu.shape, generator=torch.Generator().manual_seed(3))
    on_cpu, _ = paste_faces(frame, restored, m)
    on_gpu = paste_faces(frame.to(CUDA), restored.to(CUDA), m)[0].cpu()
    assert (on_cpu.int() - on_gpu.int()).abs().max() <= 2
    large = torch.from_numpy(np.tile(np.array([0, 255], np.uint8), (3, 600, 400)))  # stripes a pixel wide
    lm = torch.from_numpy(template(560) + np.array([120, 20], np.float32))[None]
    shrunk_cpu, _ = align_faces(large, lm, 64)  # blurred before they are sampled (align.shrink_blur)
    shrunk_gpu, _ = align_faces(large.to(CUDA), lm, 64)
    assert (shrunk_gpu.cpu() - shrunk_cpu).abs().mean() < 0.01 and float(shrunk_gpu[0, :, 8:-8, 8:-8].std()) < 4 / 255


def test_retinaface_on_cuda_finds_the_cpu_faces(shared_data):
    from vidrestore.faces.detect import DetectorConfig, create_detector
    from vidrestore.io import VideoReader

    weights = shared_file(shared_data, "weights/retinaface_mobilenet0.25_Final.pth")
    with VideoReader(shared_file(shared_data, "videos/keep_real_1.mp4")) as r:
        images = [f.image for f, _ in zip(r, range(8))]
    found = []
    for device in (torch.device("cpu"), CUDA):
        # The network alone: dlib's landmark refiner runs on the host either way (and its 99 MB model
        # need not travel to a GPU machine).
        det = create_detector(DetectorConfig(backend="retinaface", weights=str(weights), refine_landmarks=False), device)
        found.append(det.detect(images))
    for on_cpu, on_gpu in zip(*found):
        assert len(on_cpu) == len(on_gpu) >= 1
        assert np.abs(on_cpu[0].box - on_gpu[0].box).max() < 1.0
        assert np.abs(on_cpu[0].landmarks - on_gpu[0].landmarks).max() < 1.0


def test_training_batches_are_degraded_and_trained_on_cuda_and_resume_there(tmp_path):
    import dataclasses

    from vidrestore.train.data import write_pack
    from vidrestore.train.trainer import Trainer, load_train_config

    rng = np.random.default_rng(0)
    pack = tmp_path / "faces.npz"
    write_pack(pack, rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), rng.normal(0, 0.1, (12, 128)).astype(np.float32), 90)

    def trainer() -> Trainer:  # every kind of sample: learned and real degradations, temporal pairs
        cfg = dataclasses.replace(load_train_config("tiny"), hq_pack=str(pack), out_dir=str(tmp_path / "run"), batch_size=8,
                                  real_lq_pack=str(pack), real_lq_fraction=0.5, learned_degradation_fraction=0.5,
                                  temporal_fraction=0.5, mixed_precision="bf16", validate_every=2, checkpoint_every=1000)
        return Trainer(cfg, CUDA)

    tr = trainer()
    batch = tr.make_batch()
    assert "pairs" in batch and all(v.device.type == "cuda" for v in batch.values())
    tr.run()
    expected = float(tr.loss(tr.make_batch()).detach())
    again = trainer()
    assert again.resume() and again.step == tr.step
    assert float(again.loss(again.make_batch()).detach()) == pytest.approx(expected, rel=1e-3)


def test_hdr_video_viewed_only_around_the_faces_restores_on_cuda_as_when_viewed_whole(shared_data, tmp_path, monkeypatch):
    """With the model on CUDA the faces are cropped and pasted on the CPU (glue_device cpu, the
    default) or on the GPU (model). Either way the reader's view of PQ video only in the boxes the
    faces are read from (pipeline.restoring.regions_read), black elsewhere, must write what a view
    of every pixel does, sample for sample (lossless FFV1), as it does on the CPU
    (test_linear.test_hdr_video_viewed_only_where_the_faces_are_read_is_restored_as_when_viewed_whole);
    and the two places must paste nearly the same faces (kornia's warps against OpenCV's)."""
    import av
    from conftest import Negative, graded_clip

    from vidrestore.faces.detect import DetectorConfig, create_detector
    from vidrestore.faces.people import PeopleConfig
    from vidrestore.io.linear import Light
    from vidrestore.pipeline import PipelineConfig, restoring, run

    weights = shared_file(shared_data, "weights/retinaface_mobilenet0.25_Final.pth")
    source = graded_clip(tmp_path / "in.mkv", shared_file(shared_data, "videos/keep_real_1.mp4"), Light.PQ)
    det = create_detector(DetectorConfig(backend="retinaface", weights=str(weights), refine_landmarks=False), CUDA)
    regions_read = restoring.regions_read

    def written(name, glue_device, viewed):
        seen = []

        def counted(*args):
            boxes = regions_read(*args)
            return lambda index: seen.append(index) or boxes(index)

        monkeypatch.setattr(restoring, "regions_read", counted if viewed else lambda *args: None)
        cfg = PipelineConfig(face_size=128, light=Light.PQ.value, measure_strength=False, people=PeopleConfig(link=False),
                             glue_device=glue_device)
        out = tmp_path / name
        assert run(source, out, cfg, Negative(128), CUDA, detector=det).tracks
        assert len(seen) == (8 if viewed else 0)
        with av.open(str(out)) as c:
            return np.stack([f.to_ndarray() for f in c.decode(video=0)]).astype(np.int32)

    with av.open(str(source)) as c:
        before = np.stack([f.to_ndarray() for f in c.decode(video=0)]).astype(np.int32)
    alone = {}
    for glue_device in ("cpu", "model"):
        alone[glue_device] = written(f"alone-{glue_device}.mkv", glue_device, True)
        whole = written(f"whole-{glue_device}.mkv", glue_device, False)
        assert alone[glue_device].shape == whole.shape == before.shape and np.array_equal(alone[glue_device], whole)
        assert all((alone[glue_device] != before).any(axis=(1, 2))), "every frame's face was restored"
    change = np.abs(alone["cpu"] - before).mean()
    assert np.abs(alone["cpu"] - alone["model"]).mean() < 0.05 * change
