"""Selective scan backends agree; S6, bi-S6 and rotary attention keep the temporal-layer contract."""

import pytest
import torch

import worldsim.models.selective_scan as selective_scan_module
from worldsim.models.s6_block_ops import causal_conv, causal_conv_silu, gated_projection
from worldsim.models.selective_scan import BlockedScan, resolve_backend, selective_scan, selective_scan_step
from worldsim.models.selective_scan_kernel import KernelScan, cpu_kernel
from worldsim.models.temporal_layers import KINDS, S6Mixer, TemporalLayer

torch.set_num_threads(1)

needs_kernel = pytest.mark.skipif(cpu_kernel() is None, reason="the C++ CPU kernel could not be built here (no compiler)")


def scan_inputs(batch=2, length=13, channels=6, state=4, device="cpu", seed=0):
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=generator).to(device)

    return {
        "u": randn(batch, length, channels),
        "delta": torch.nn.functional.softplus(randn(batch, length, channels)),
        "A": -torch.exp(randn(channels, state)),
        "B": randn(batch, length, state),
        "C": randn(batch, length, state),
        "D": randn(channels),
    }


@pytest.mark.parametrize("backend", ["parallel", "blocked", pytest.param("cpp", marks=needs_kernel)])
@pytest.mark.parametrize("length", [1, 13, 32])
def test_cpu_scans_match_the_sequential_reference_forward_and_backward(backend, length):
    inputs = {name: value.requires_grad_() for name, value in scan_inputs(length=length).items()}
    outputs, grads = {}, {}
    for run in ("sequential", backend):
        y, state = selective_scan(**inputs, backend=run, return_state=True)
        (y.square().sum() + state.sum()).backward()
        outputs[run] = (y.detach(), state.detach())
        grads[run] = {name: value.grad.clone() for name, value in inputs.items()}
        for value in inputs.values():
            value.grad = None
    for a, b in zip(outputs[backend], outputs["sequential"], strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    for name in inputs:
        torch.testing.assert_close(grads[backend][name], grads["sequential"][name], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("budget", "min_step", "cut"),
    [
        (1 << 18, 1 << 14, (1, 1, 7)),  # everything in one block
        (2 * 7 * 4 * 40, 1 << 14, (3, 1, 7)),  # blocks of two whole sequences
        (3 * 4 * 40, 1 << 14, (1, 1, 1)),  # all sequences, one time step at a time
        (4 * 16, 1 << 14, (1, 3, 1)),  # channel groups of 16 (and one of 8), one time step at a time
        (3 * 4 * 40, 1, (5, 1, 3)),  # one sequence at a time, chunks of 3, 3 and 1 time steps
    ],
)
def test_the_blocked_scan_from_a_carried_state_matches_the_reference_in_any_blocks(monkeypatch, budget, min_step, cut):
    monkeypatch.setattr(selective_scan_module, "BLOCK_ELEMENTS", budget)
    monkeypatch.setattr(selective_scan_module, "MIN_STEP_ELEMENTS", min_step)
    blocks, chunk = selective_scan_module._blocks(5, 7, 40, 4, budget)
    assert (len({rows.start for rows, _ in blocks}), len({cols.start for _, cols in blocks}), chunk) == cut
    assert_from_a_carried_state_it_matches_the_reference(BlockedScan.apply)


@needs_kernel
@pytest.mark.parametrize("threads", [1, 3])
def test_the_kernel_from_a_carried_state_matches_the_reference_on_any_threads(threads):
    torch.set_num_threads(threads)  # sequences split among threads, each with its own share of dA and dD
    try:
        assert_from_a_carried_state_it_matches_the_reference(lambda *values: KernelScan.apply(*values, False))
    finally:
        torch.set_num_threads(1)


def assert_from_a_carried_state_it_matches_the_reference(scan):
    """``scan(u, delta, A, B, C, D, initial) -> (y, last state)``: forward, last state and every
    gradient equal the sequential reference's, from a carried initial state."""
    inputs = scan_inputs(batch=5, length=7, channels=40, state=4)
    initial = torch.randn(5, 40, 4, generator=torch.Generator().manual_seed(1))
    values = [inputs[name].clone().requires_grad_() for name in ("u", "delta", "A", "B", "C", "D")] + [initial.clone().requires_grad_()]
    y, last = scan(*values)
    (y.square().sum() + (last * torch.arange(4.0)).sum()).backward()
    reference = [value.detach().clone().requires_grad_() for value in values]
    y_ref, last_ref = selective_scan_module._scan(*reference, backend="sequential")
    (y_ref.square().sum() + (last_ref * torch.arange(4.0)).sum()).backward()
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(last, last_ref, atol=1e-5, rtol=1e-5)
    for value, value_ref in zip(values, reference, strict=True):
        torch.testing.assert_close(value.grad, value_ref.grad, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", ["sequential", "blocked", pytest.param("cpp", marks=needs_kernel)])
def test_delta_through_softplus_in_the_scan_equals_softplus_first(backend):
    inputs = scan_inputs(length=11)
    raw = torch.randn(2, 11, 6, generator=torch.Generator().manual_seed(2)) * 8  # some past the kernel's cut-off at 20
    raw[0, 0, 0] = 25.0
    results = []
    for fused in (False, True):
        delta = raw.clone().requires_grad_()
        given = {**inputs, "delta": delta if fused else torch.nn.functional.softplus(delta)}
        y = selective_scan(**given, backend=backend if fused else "sequential", delta_softplus=fused)
        y.square().sum().backward()
        results.append((y.detach(), delta.grad))
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(results[1][1], results[0][1], atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("backend", ["blocked", pytest.param("cpp", marks=needs_kernel)])
def test_the_fused_cpu_scans_keep_only_their_inputs_for_backward(backend):
    inputs = {name: value.requires_grad_() for name, value in scan_inputs(length=20).items()}
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda tensor: saved.append(tensor.numel()) or tensor, lambda tensor: tensor):
        selective_scan(**inputs, backend=backend).sum().backward()
    assert sum(saved) == sum(value.numel() for value in inputs.values())  # no float[B, L, D, N] states


@pytest.mark.parametrize("backend", ["sequential", "parallel"])
def test_chunked_scan_under_checkpointing_matches_the_whole_scan_and_keeps_less(backend):
    inputs = {name: value.requires_grad_() for name, value in scan_inputs(length=20).items()}
    results = {}
    for chunk_size in (None, 6):
        saved: dict[int, int] = {}

        def pack(tensor, saved=saved):
            saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            y, state = selective_scan(**inputs, backend=backend, return_state=True, chunk_size=chunk_size)
        (y.square().sum() + state.sum()).backward()
        results[chunk_size] = (y.detach(), state.detach(), {n: v.grad.clone() for n, v in inputs.items()}, sum(saved.values()))
        for value in inputs.values():
            value.grad = None
    whole, chunked = results[None], results[6]
    torch.testing.assert_close(chunked[0], whole[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(chunked[1], whole[1], atol=1e-5, rtol=1e-5)
    for name in inputs:
        torch.testing.assert_close(chunked[2][name], whole[2][name], atol=1e-4, rtol=1e-4)
    assert chunked[3] < whole[3] / 2, (chunked[3], whole[3])  # the states are not kept for backward


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the CUDA kernel needs a GPU")
def test_cuda_kernel_matches_the_sequential_reference():
    pytest.importorskip("mamba_ssm")
    inputs = {name: value.requires_grad_() for name, value in scan_inputs(length=64, device="cuda").items()}
    y_cuda = selective_scan(**inputs, backend="cuda")
    y_cuda.square().sum().backward()
    grads_cuda = {name: value.grad.clone() for name, value in inputs.items()}
    for value in inputs.values():
        value.grad = None
    y_reference = selective_scan(**inputs, backend="sequential")
    y_reference.square().sum().backward()
    torch.testing.assert_close(y_cuda, y_reference, atol=1e-4, rtol=1e-4)
    for name, value in inputs.items():
        torch.testing.assert_close(grads_cuda[name], value.grad, atol=1e-3, rtol=1e-3)


def test_backends_resolve_and_refuse_what_cannot_run(monkeypatch):
    built = cpu_kernel() is not None
    assert resolve_backend("auto", torch.device("cpu")) == ("cpp" if built else "blocked")
    assert resolve_backend("auto", torch.device("cpu"), torch.float64) == "blocked"  # the kernel is float32 only
    monkeypatch.setattr(selective_scan_module, "cpu_kernel", lambda: None)  # a machine without a compiler
    assert resolve_backend("auto", torch.device("cpu")) == "blocked"
    with pytest.raises(ValueError, match="needs float32 CPU tensors and a C\\+\\+ compiler"):
        resolve_backend("cpp", torch.device("cpu"))
    with pytest.raises(ValueError, match="unknown selective-scan backend"):
        resolve_backend("fast", torch.device("cpu"))
    with pytest.raises(ValueError, match="needs mamba-ssm"):
        resolve_backend("cuda", torch.device("cpu"))


def test_stepping_the_scan_equals_the_whole_scan():
    inputs = scan_inputs(length=9)
    y, last = selective_scan(**inputs, backend="sequential", return_state=True)
    state = torch.zeros(2, 6, 4)
    for t in range(9):
        y_t, state = selective_scan_step(
            state, inputs["u"][:, t], inputs["delta"][:, t], inputs["A"], inputs["B"][:, t], inputs["C"][:, t], inputs["D"]
        )
        torch.testing.assert_close(y_t, y[:, t], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state, last, atol=1e-5, rtol=1e-5)


def trained_looking(layer: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The layer with its zero-initialised output projections given random weights, so that it is
    not the identity (a trained layer is not)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in layer.modules():
            if hasattr(module, "out_proj"):
                module.out_proj.weight.copy_(torch.randn(module.out_proj.weight.shape, generator=generator) * 0.3)
    return layer


@pytest.mark.parametrize("kind", KINDS)
def test_a_temporal_layer_keeps_the_shape_starts_as_the_identity_and_mixes_only_along_time(kind):
    torch.manual_seed(0)
    video = torch.randn(2, 8, 5, 3, 4)  # float[B, C, F, H, W]
    layer = TemporalLayer(kind, 8)
    torch.testing.assert_close(layer(video), video)  # zero-initialised output: the identity
    trained_looking(layer)
    out = layer(video)
    assert out.shape == video.shape and not torch.allclose(out, video)
    # Another pixel's frames, or another video, change nothing here: each pixel is its own sequence.
    changed = video.clone()
    changed[0, :, :, 2, 3] += torch.randn(8, 5)
    changed[1] += torch.randn(changed[1].shape)
    torch.testing.assert_close(layer(changed)[0, :, :, :2], out[0, :, :, :2])
    # Along time: the last frame reaches the first frame only in the bidirectional layers.
    later = video.clone()
    later[:, :, -1] += torch.randn(later[:, :, -1].shape)  # not a constant: the layer norm would remove it
    first_moved = not torch.allclose(layer(later)[:, :, 0], out[:, :, 0])
    assert first_moved == (kind != "s6"), kind


def test_causal_s6_steps_frame_by_frame_as_the_whole_video():
    torch.manual_seed(0)
    video = torch.randn(2, 8, 7, 3, 2)
    layer = trained_looking(TemporalLayer("s6", 8, conv_size=3))
    whole = layer(video)
    state = layer.initial_state(2, 3, 2)
    for frame in range(7):
        out, state = layer.step(video[:, :, frame], state)
        torch.testing.assert_close(out, whole[:, :, frame], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="only a causal S6 layer"):
        TemporalLayer("bi-s6", 8).step(video[:, :, 0], state)


def test_s6_trains_with_the_parallel_scan():
    """Training through the parallel scan learns what needs memory: output, at every one of 12
    frames, the first frame's input. Without memory only frame 0 can (loss about 11/12 of the
    inputs' variance); the 4-frame convolution alone reaches frames 0-3 (8/12 = 0.67); below that,
    the scan's state carries the first frame further."""
    torch.manual_seed(0)
    mixer = S6Mixer(4, state_size=8, backend="parallel")
    optimizer = torch.optim.Adam(mixer.parameters(), lr=3e-2)
    x = torch.randn(16, 12, 4)
    losses = []
    for _ in range(100):
        loss = (mixer(x) - x[:, :1]).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6, losses[::10]


def test_the_s6_blocks_convolution_and_gate_have_autograds_gradients_and_keep_only_their_inputs():
    generator = torch.Generator().manual_seed(0)
    u, gate = (torch.randn(2, 9, 5, generator=generator, dtype=torch.float64, requires_grad=True) for _ in range(2))
    conv_weight, conv_bias = (torch.randn(*shape, generator=generator, dtype=torch.float64, requires_grad=True) for shape in ((5, 4), (5,)))
    out_weight = torch.randn(3, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(causal_conv_silu, (u, conv_weight, conv_bias))
    assert torch.autograd.gradcheck(gated_projection, (u, gate, out_weight))
    # The convolution is causal: frame t reads frames t - 3 .. t (against torch's padded Conv1d).
    reference = torch.nn.functional.conv1d(u.transpose(1, 2), conv_weight.unsqueeze(1), conv_bias, padding=3, groups=5)[..., :9]
    torch.testing.assert_close(causal_conv(u, conv_weight, conv_bias), reference.transpose(1, 2))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda tensor: saved.append(tensor) or tensor, lambda tensor: tensor):
        causal_conv_silu(u, conv_weight, conv_bias)
        gated_projection(u, gate, out_weight)
    assert [tensor.shape for tensor in saved] == [u.shape, conv_weight.shape, conv_bias.shape, u.shape, gate.shape, out_weight.shape]


@pytest.mark.parametrize("kind", KINDS)
def test_a_recomputed_layer_gives_the_same_values_and_gradients_and_keeps_only_its_inputs(kind):
    torch.manual_seed(0)
    video = torch.randn(2, 8, 24, 2, 3, requires_grad=True)
    plain = trained_looking(TemporalLayer(kind, 8))
    recomputed = TemporalLayer(kind, 8, recompute=True)
    recomputed.load_state_dict(plain.state_dict())
    results = []
    for layer in (plain, recomputed):
        saved: dict[int, int] = {}

        def pack(tensor, saved=saved):
            saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            out = layer(video)
        grads = torch.autograd.grad(out.square().sum(), [video, *layer.parameters()])
        results.append((out.detach(), grads, sum(saved.values())))
    (out, grads, kept), (out_again, grads_again, kept_again) = results
    assert torch.equal(out_again, out)
    for grad, grad_again in zip(grads, grads_again, strict=True):
        torch.testing.assert_close(grad_again, grad, atol=1e-5, rtol=1e-5)
    # What a recomputed layer keeps: the layer norm's input and output (and the reversed copy of a
    # bi-S6's), not the mixer's activations: a few float[N, F, C] against a dozen float[N, F, 2C].
    assert kept_again <= 4 * video.numel() * 4 < kept / 2, (kept_again, kept)
    with torch.no_grad():  # without gradients there is nothing to keep: the plain forward pass
        torch.testing.assert_close(recomputed(video), out)


def test_unknown_kind_and_bad_attention_width_are_refused():
    with pytest.raises(ValueError, match="unknown temporal layer"):
        TemporalLayer("lstm", 8)
    with pytest.raises(ValueError, match="divisible by heads"):
        TemporalLayer("attn", 6, heads=4)
