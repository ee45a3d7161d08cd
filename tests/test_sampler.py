import numpy as np
import pytest
import torch

from vidrestore.diffusion.flow import consistency_mask, dis_flow, flows_to_previous, warp
from vidrestore.diffusion.sampler import (
    SamplerConfig,
    TemporalInputs,
    TemporalState,
    TrackNoise,
    TrackSpan,
    make_scheduler,
    sample,
)
from vidrestore.errors import UsageError
from vidrestore.models.flipnet import RESTORE, Flipnet, load_config


def _model():
    torch.manual_seed(0)
    m = Flipnet(load_config("tiny")).eval()
    torch.nn.init.normal_(m.conv_out.weight, std=0.05)
    return m


def _run(model, lq, cfg, temporal=None, track_id=0):
    sch = make_scheduler(cfg, 1000, 0.0001, 0.02, "sample")
    state = TemporalState(TrackNoise.draw(cfg.seed, track_id, tuple(lq.shape[1:]), cfg.steps, lq.device))
    return sample(lambda x, t: model(x, t, lq, None, RESTORE), sch, cfg, lq, [TrackSpan(state, len(lq))], temporal)


def test_sampler_is_deterministic_with_a_seed():
    m = _model()
    lq = torch.rand(3, 3, 32, 32) * 2 - 1
    cfg = SamplerConfig(steps=4, eta=0.5)
    assert torch.equal(_run(m, lq, cfg), _run(m, lq, cfg))
    assert not torch.equal(_run(m, lq, cfg), _run(m, lq, SamplerConfig(steps=4, eta=0.5, seed=1)))


def test_identical_frames_with_shared_noise_give_identical_outputs():
    m = _model()
    frame = torch.rand(1, 3, 32, 32) * 2 - 1
    out = _run(m, frame.repeat(4, 1, 1, 1), SamplerConfig(steps=4, eta=1.0))
    assert all(torch.equal(out[0], out[i]) for i in range(1, 4))


def test_dpmsolver_preset_runs():
    out = _run(_model(), torch.rand(2, 3, 32, 32) * 2 - 1, SamplerConfig(steps=5, scheduler="dpmsolver++"))
    assert out.shape == (2, 3, 32, 32) and torch.isfinite(out).all()


def test_dis_flow_recovers_a_translation_and_warp_uses_it():
    rng = np.random.default_rng(0)
    import cv2

    base = cv2.GaussianBlur((rng.random((96, 96, 3)) * 255).astype(np.uint8), (0, 0), 2)
    shifted = np.roll(base, 3, axis=1)  # content moves right by 3 px
    flow = dis_flow(shifted, base)  # shifted(p) ~ base(p + flow)
    assert abs(np.median(flow[20:-20, 20:-20, 0]) + 3) < 0.3
    f = torch.from_numpy(flow).permute(2, 0, 1)[None]
    warped = warp(torch.from_numpy(base).permute(2, 0, 1)[None].float(), f)
    err = (warped[0, :, 10:-10, 10:-10] - torch.from_numpy(shifted).permute(2, 0, 1)[:, 10:-10, 10:-10].float()).abs().mean()
    assert err < 3.0
    back = torch.from_numpy(dis_flow(base, shifted)).permute(2, 0, 1)[None]
    assert consistency_mask(back, f)[0, 0, 20:-20, 20:-20].mean() > 0.95


def test_a_window_of_flows_equals_its_pairs_one_by_one():
    """The window's pairs run on a thread pool and its masks in one batch: nothing may change."""
    import cv2

    rng = np.random.default_rng(5)
    tex = cv2.GaussianBlur((rng.random((80, 80, 3)) * 255).astype(np.uint8), (0, 0), 1.5)
    frames = np.stack([np.roll(tex, (i % 3, 2 * i), axis=(0, 1))[8:56, 8:56] for i in range(7)])
    flows, valid = flows_to_previous(frames)
    assert not flows[0].any() and not valid[0].any()
    for i in range(1, len(frames)):
        bwd = torch.from_numpy(dis_flow(frames[i], frames[i - 1])).permute(2, 0, 1)[None]
        fwd = torch.from_numpy(dis_flow(frames[i - 1], frames[i])).permute(2, 0, 1)[None]
        assert torch.equal(flows[i], bwd[0]) and torch.equal(valid[i], consistency_mask(fwd, bwd)[0])
    assert 0.5 < float(valid[1:].mean()) < 1  # the masks are not trivial: rolled-in borders fail
    lone, lone_valid = flows_to_previous(frames[:1])
    assert lone.shape == (1, 2, 48, 48) and not lone.any() and not lone_valid.any()


def test_warping_lowers_temporal_difference_on_a_translating_face():
    """A face crop translating 2 px per frame: with flow warping the outputs change less between
    frames (after compensating the motion) than without it."""
    import cv2

    rng = np.random.default_rng(3)
    tex = cv2.GaussianBlur((rng.random((64, 64, 3)) * 255).astype(np.uint8), (0, 0), 1.5)
    frames = np.stack([np.roll(tex, 2 * i, axis=1)[16:48, 16:48] for i in range(6)])
    noisy = np.clip(frames + rng.normal(0, 25, frames.shape), 0, 255).astype(np.uint8)
    lq = torch.from_numpy(noisy).permute(0, 3, 1, 2).float() / 127.5 - 1
    m = _model()
    cfg = SamplerConfig(steps=4, eta=1.0, warp_schedule=[[0.0, 1.0], [1.0, 1.0]], reanchor_invalid=1.0)
    flows, valid = flows_to_previous(frames)
    plain = _run(m, lq, cfg)
    warped = _run(m, lq, cfg, TemporalInputs(flows, valid))

    def temporal_error(out):
        errs = []
        for i in range(1, len(out)):
            comp = warp(out[i - 1 : i], flows[i : i + 1])
            errs.append(((out[i : i + 1] - comp).abs() * valid[i]).sum() / valid[i].sum().clamp_min(1))
        return float(torch.stack(errs).mean())

    assert temporal_error(warped) < 0.7 * temporal_error(plain)


def test_a_compiled_restorer_gives_the_eager_restorer_output():
    import torch._dynamo

    from vidrestore.restore import FlipnetRestorer

    torch._dynamo.reset()
    crops = torch.rand(6, 3, 32, 32)  # two windows of one size
    outs = []
    # one trace for every step and window: the second step's x came in channels-last and the model
    # was traced again (16.8 s of this test against 10.0 s now; a second inductor build where it is used)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for backend in ("", "eager"):  # dynamo tracing with eager kernels: the compile path without a C++ build
            restorer = FlipnetRestorer(_model(), SamplerConfig(steps=2, start_step=200), torch.device("cpu"), None, "tiny",
                                       compile_backend=backend)
            ctx = restorer.start_track(0, crops)
            outs.append(torch.cat([restorer.restore(crops[:3], ctx), restorer.restore(crops[3:], ctx)]))
    assert type(restorer.model).__name__ == "OptimizedModule"
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    with pytest.raises(UsageError, match=r"--compile nope: torch.compile has no such backend; it has .*inductor"):
        FlipnetRestorer(_model(), SamplerConfig(), torch.device("cpu"), None, "tiny", compile_backend="nope")


def _translating_track(seed: int, count: int) -> torch.Tensor:
    import cv2

    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur((rng.random((64, 64, 3)) * 255).astype(np.uint8), (0, 0), 1.5)
    return torch.from_numpy(np.stack([np.roll(tex, 2 * i, axis=1)[16:48, 16:48] for i in range(count)])).permute(0, 3, 1, 2) / 255


def test_tracks_restored_in_one_batch_equal_tracks_restored_alone():
    """Pieces of two tracks in shared forward passes: each keeps its own noise, identity and warped
    x0, across a piece boundary too, so the result is the per-track result."""
    from vidrestore.restore import FlipnetRestorer

    model = _model()
    torch.nn.init.normal_(model.identity_proj[-1].weight, std=0.5)
    a, b = _translating_track(1, 5), _translating_track(2, 4)
    identities = {0: torch.randn(128), 1: torch.randn(128)}

    def restorer():
        return FlipnetRestorer(model, SamplerConfig(steps=3, eta=1.0, start_step=300), torch.device("cpu"), None, "tiny")

    def start(r, track_id, crops):
        ctx = r.start_track(track_id, crops)
        ctx.identity = identities[track_id]
        return ctx

    alone = restorer()
    ca, cb = start(alone, 0, a), start(alone, 1, b)
    expected_a = torch.cat([alone.restore(a[:3], ca), alone.restore(a[3:], ca)])
    expected_b = torch.cat([alone.restore(b[:1], cb), alone.restore(b[1:], cb)])

    joint = restorer()
    ca, cb = start(joint, 0, a), start(joint, 1, b)
    first_a, first_b = joint.restore_tracks([(a[:3], ca), (b[:1], cb)])
    rest_b, rest_a = joint.restore_tracks([(b[1:], cb), (a[3:], ca)])
    assert torch.allclose(torch.cat([first_a, rest_a]), expected_a, atol=1e-5)
    assert torch.allclose(torch.cat([first_b, rest_b]), expected_b, atol=1e-5)
    assert not torch.allclose(expected_a[:3], joint.restore_tracks([(a[:3], start(joint, 1, a))])[0], atol=1e-3)


def test_a_reference_crop_sets_the_track_identity(sample_clip, tmp_path):
    from PIL import Image

    from vidrestore.faces.detect import DetectorConfig, create_detector
    from vidrestore.faces.identity import DlibIdentityEncoder
    from vidrestore.io import VideoReader
    from vidrestore.pipeline.analysis import reference_crop
    from vidrestore.restore import FlipnetRestorer

    with VideoReader(sample_clip) as r:
        frame = next(iter(r)).image
    photo = tmp_path / "reference.png"
    Image.fromarray(frame).save(photo)
    crop = reference_crop(str(photo), create_detector(DetectorConfig(backend="dlib"), torch.device("cpu")), 128)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    encoder = DlibIdentityEncoder()
    restorer = FlipnetRestorer(_model(), SamplerConfig(steps=2, start_step=200), torch.device("cpu"), encoder, "tiny")
    own_frames = torch.rand(4, 3, 128, 128)
    anchored = restorer.start_track(0, own_frames, torch.from_numpy(crop).permute(2, 0, 1)[None] / 255)
    own = restorer.start_track(0, own_frames)
    assert torch.allclose(anchored.identity, torch.from_numpy(encoder.embed(crop[None])[0]), atol=1e-5)
    assert not torch.allclose(own.identity, anchored.identity, atol=1e-2)


class _ShortOfMemory(torch.nn.Module):
    """The network, on a device that runs out of memory above ``limit`` crops per forward pass."""

    def __init__(self, model, limit: int):
        super().__init__()
        self.model, self.limit, self.config = model, limit, model.config

    def forward(self, x, *args):
        if len(x) > self.limit:
            raise torch.OutOfMemoryError(f"out of memory: {len(x)} crops")
        return self.model(x, *args)


def test_running_out_of_memory_halves_the_forward_passes_and_changes_nothing():
    from vidrestore.restore import FlipnetRestorer

    crops = _translating_track(3, 7)
    cfg = SamplerConfig(steps=2, start_step=200)
    ample = FlipnetRestorer(_model(), cfg, torch.device("cpu"), None, "tiny")
    expected = ample.restore(crops, ample.start_track(0, crops))
    short = FlipnetRestorer(_ShortOfMemory(_model(), 2), cfg, torch.device("cpu"), None, "tiny")
    short.micro_batch = 0  # the whole batch at once, as on a GPU
    assert torch.allclose(short.restore(crops, short.start_track(0, crops)), expected, atol=1e-5)
    assert short.micro_batch == 1  # 7 -> 3 -> 1: the first size that fits, kept for the rest of the run
    assert short.notes == ["out of memory on cpu at 7 faces per forward pass; continued at 3",
                           "out of memory on cpu at 3 faces per forward pass; continued at 1"]


def test_no_memory_even_for_one_face_is_a_model_error_with_a_way_out():
    from vidrestore.errors import ModelError
    from vidrestore.restore import FlipnetRestorer

    crops = _translating_track(3, 2)
    restorer = FlipnetRestorer(_ShortOfMemory(_model(), 0), SamplerConfig(steps=2, start_step=200), torch.device("cpu"), None, "tiny")
    with pytest.raises(ModelError, match="out of memory on cpu restoring one 32 px face at a time; .* --device cpu"):
        restorer.restore(crops, restorer.start_track(0, crops))


def test_bf16_runs_the_networks_convolutions_in_bf16_on_the_cpu_and_stays_close_to_fp32():
    from vidrestore.restore import FlipnetRestorer

    crops = _translating_track(4, 4)
    seen, outs = {}, {}

    def note(dtype):
        def hook(module, args, out):
            seen[dtype] = out.dtype
        return hook

    for dtype in (torch.float32, torch.bfloat16):
        model = _model()
        model.conv_out.register_forward_hook(note(dtype))
        restorer = FlipnetRestorer(model, SamplerConfig(steps=2, start_step=200), torch.device("cpu"), None, "tiny", dtype=dtype)
        outs[dtype] = restorer.restore(crops, restorer.start_track(0, crops))
        assert restorer.micro_batch == {torch.float32: 4, torch.bfloat16: 8}[dtype]  # the same bytes a forward pass
    assert seen == {torch.float32: torch.float32, torch.bfloat16: torch.bfloat16}
    assert outs[torch.bfloat16].dtype == torch.float32
    difference = (outs[torch.bfloat16] - outs[torch.float32]).abs()
    assert 0 < difference.mean() < 0.005 and difference.max() < 0.05


@pytest.mark.parametrize("device, tiles, dot_products, expected", [
    ("cpu", True, True, torch.bfloat16), ("cpu", False, True, torch.bfloat16), ("cpu", True, False, torch.bfloat16),
    ("cpu", False, False, torch.float32), ("cuda", False, False, torch.bfloat16), ("mps", True, True, torch.float32)])
def test_auto_precision_is_bf16_where_the_hardware_multiplies_in_it(monkeypatch, device, tiles, dot_products, expected):
    """AMX tiles or AVX-512's bf16 dot products (an AMD EPYC with the latter alone restored 1.4-1.5
    times as fast in bf16) make auto bf16 on the CPU; without either, bf16 is emulated."""
    from vidrestore.models.precision import network_dtype

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: tiles)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: dot_products)
    assert network_dtype("auto", torch.device(device)) == expected
    assert network_dtype("fp32", torch.device(device)) == torch.float32
    assert network_dtype("bf16", torch.device(device)) == torch.bfloat16


@pytest.mark.parametrize("dtype, fp16, bf16, noted", [
    (torch.float16, False, True, True), (torch.float16, True, True, False), (torch.bfloat16, True, False, True),
    (torch.bfloat16, False, True, False), (torch.float32, False, False, False)])
def test_a_precision_the_cpu_only_emulates_is_noted_by_the_restorer(monkeypatch, tiny_model, dtype, fp16, bf16, noted):
    """--dtype fp16 on an AMD EPYC with AVX-512 BF16 alone restored 8.5 times slower than bf16
    (0.46 against 3.92 face-frames/s), without a word."""
    from vidrestore.diffusion.sampler import SamplerConfig
    from vidrestore.models import precision
    from vidrestore.restore import load_restorer

    monkeypatch.setattr(precision, "cpu_has_fp16", lambda: fp16)
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: bf16)
    notes = load_restorer(str(tiny_model), SamplerConfig(), torch.device("cpu"), dtype, None, 64).notes
    assert len(notes) == noted
    if noted:
        name = precision.precision_name(dtype)
        auto = "bf16" if bf16 else "fp32"
        assert notes[0].startswith(f"the networks ran at {name}, which this CPU has no arithmetic for") and f"auto runs {auto} here" in notes[0]
    assert precision.emulated_precision_note(dtype, torch.device("cuda")) == []


def test_fp16_arithmetic_is_told_from_the_cpus_flags(monkeypatch, tmp_path):
    from vidrestore.models import precision

    monkeypatch.setattr(torch.cpu, "_is_amx_fp16_supported", lambda: False)
    flags = {"with": "flags\t\t: fpu avx512f avx512_fp16 amx_tile\n", "without": "flags\t\t: fpu avx512f avx512_bf16\n"}
    for kind, text in flags.items():
        monkeypatch.setattr(precision.Path, "read_text", lambda self, errors=None, text=text: text)
        assert precision.cpu_has_fp16() == (kind == "with")
    monkeypatch.setattr(torch.cpu, "_is_amx_fp16_supported", lambda: True)
    assert precision.cpu_has_fp16()


def test_a_torch_without_the_capability_checks_runs_fp32_on_the_cpu(monkeypatch):
    from vidrestore.models.precision import network_dtype

    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    assert network_dtype("auto", torch.device("cpu")) == torch.float32


@pytest.mark.parametrize("dtype, suffix", [(torch.float32, "tiny)"), (torch.bfloat16, "tiny, bf16)")])
def test_the_restorers_name_says_its_precision_unless_fp32(tiny_model, dtype, suffix):
    from vidrestore.restore import load_restorer

    restorer = load_restorer(str(tiny_model), SamplerConfig(steps=2), torch.device("cpu"), dtype, None, 32)
    assert restorer.name.endswith(suffix) and restorer.dtype == dtype
