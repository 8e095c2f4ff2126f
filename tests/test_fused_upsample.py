"""The fused upsample+conv of G against the plain reference arithmetic: forward and backward,
for every size and layer shape G uses, per layer, per stage (with the tiled or folded code)
and whole G with every combination of the two exact rewrites (fused_upsample, fold_code)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cyclegen import Domain
from cyclegen_aegan.fused import FusedUpsampleConv2d, phase_taps
from cyclegen_aegan.layers import SameConv2d
from cyclegen_aegan.networks import AEGANGenerator, UpStage
from cyclegen_priors import Gaussian

#: Tolerances relative to each tensor's scale: float64 rounding, float32 rounding.
F64, F32 = 1e-11, 1e-5
#: The full-size G's upsampling convs: (in channels incl. the code, out channels, low-res size).
REFERENCE_LAYERS = [(128, 256, 4), (320, 128, 8), (192, 128, 16), (192, 64, 32)]


class Images(Domain):
    """A stand-in image domain: only its shape matters to G."""

    def __init__(self, size: int) -> None:
        super().__init__("x", (3, size, size))

    def batch(self, n: int, generator: torch.Generator, split: str = "train") -> Tensor:
        raise NotImplementedError


def pair(
    in_channels: int, out_channels: int, kernel: int = 4, factor: int = 2
) -> tuple[FusedUpsampleConv2d, SameConv2d]:
    """A fused layer and a plain SameConv2d loaded with its parameters, in float64."""
    fused = FusedUpsampleConv2d(in_channels, out_channels, kernel, factor).double()
    nn.init.normal_(fused.bias)  # non-zero, so a misplaced bias shows
    plain = SameConv2d(in_channels, out_channels, kernel).double()
    plain.load_state_dict(fused.state_dict())
    return fused, plain


def outputs_and_grads(
    net: nn.Module, inputs: list[Tensor], run: Callable[..., Tensor], grad: Tensor
) -> list[Tensor]:
    """`run(*inputs)`, then the gradients of <output, grad> w.r.t. the inputs and `net`'s parameters."""
    inputs = [x.detach().requires_grad_() for x in inputs]
    net.zero_grad()
    out = run(*inputs)
    out.backward(grad)
    return [out.detach()] + [x.grad for x in inputs] + [p.grad for p in net.parameters()]


def assert_close(got: Tensor, want: Tensor, tolerance: float) -> None:
    """Equal up to `tolerance` times the largest magnitude in `want` (rounding scales with it)."""
    torch.testing.assert_close(got, want, atol=tolerance * want.abs().max().item(), rtol=0)


def assert_same_layer(
    fused: FusedUpsampleConv2d, plain: SameConv2d, x: Tensor, factor: int, tolerance: float = F64
) -> None:
    """Fused vs upsample-then-plain: output, input gradient, weight and bias gradients."""
    torch.manual_seed(1)
    grad = torch.randn(x.shape[0], plain.out_channels, x.shape[2] * factor, x.shape[3] * factor, dtype=x.dtype)

    def upsample_then_conv(x: Tensor) -> Tensor:
        return plain(F.interpolate(x, scale_factor=factor, mode="nearest"))

    expected = outputs_and_grads(plain, [x], upsample_then_conv, grad)
    for got, want in zip(outputs_and_grads(fused, [x], fused, grad), expected):
        assert_close(got, want, tolerance)


# --- the derivation ------------------------------------------------------------------------


def test_phase_taps_are_the_derived_sums() -> None:
    # Kernel 4, factor 2, TF padding 1 before: phase 0 reads offsets (-1, 0, +1) with
    # (w0, w1 + w2, w3); phase 1 reads (0, +1) with (w0 + w1, w2 + w3); low-res pad 1 each side.
    taps, before, after = phase_taps(4, 2, 1)
    assert (before, after) == (1, 1)
    w = torch.tensor([1.0, 10.0, 100.0, 1000.0])
    assert (taps @ w).tolist() == [[1.0, 110.0, 1000.0], [0.0, 11.0, 1100.0]]


def test_phase_kernels_hold_25_distinct_taps_in_one_3x3_conv() -> None:
    fused = FusedUpsampleConv2d(1, 1, 4, 2)
    with torch.no_grad():
        fused.weight.fill_(1.0)
    phases = fused.phase_weight()
    assert phases.shape == (4, 1, 3, 3)  # phases (0, 0), (0, 1), (1, 0), (1, 1) of the one channel
    assert [torch.count_nonzero(p).item() for p in phases] == [9, 6, 6, 4]
    assert phases.sum().item() == 4 * 16  # every phase sums all 16 weights


# --- one layer against the plain arithmetic -----------------------------------------------------


@pytest.mark.parametrize("in_channels, out_channels, size", REFERENCE_LAYERS)
def test_reference_layers_match_plain_in_float64(in_channels: int, out_channels: int, size: int) -> None:
    torch.manual_seed(0)
    fused, plain = pair(in_channels, out_channels)
    assert_same_layer(fused, plain, torch.randn(2, in_channels, size, size, dtype=torch.float64), 2)


@pytest.mark.parametrize(
    "height, width", [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (8, 8), (64, 64), (3, 6), (1, 4)]
)
def test_every_size_and_border_matches_plain(height: int, width: int) -> None:
    torch.manual_seed(0)
    fused, plain = pair(5, 7)
    assert_same_layer(fused, plain, torch.randn(2, 5, height, width, dtype=torch.float64), 2)


@pytest.mark.parametrize("kernel, factor", [(3, 2), (5, 2), (2, 2), (1, 2), (4, 3), (3, 4)])
def test_other_kernels_and_factors_match_plain(kernel: int, factor: int) -> None:
    torch.manual_seed(0)
    fused, plain = pair(3, 4, kernel, factor)
    for size in (1, 4, 5):
        x = torch.randn(2, 3, size, size, dtype=torch.float64)
        assert_same_layer(fused, plain, x, factor)


def test_float32_matches_plain_to_rounding() -> None:
    torch.manual_seed(0)
    fused, plain = (net.float() for net in pair(320, 128))
    assert_same_layer(fused, plain, torch.randn(2, 320, 8, 8), 2, F32)


def test_a_misplaced_tap_is_caught() -> None:
    # The checks above can fail: moving one tap of phase 1 to its neighbouring offset breaks them.
    torch.manual_seed(0)
    fused, plain = pair(5, 7)
    fused.taps[1, 1, 1], fused.taps[1, 2, 1] = 0.0, 1.0
    with pytest.raises(AssertionError):
        assert_same_layer(fused, plain, torch.randn(2, 5, 4, 4, dtype=torch.float64), 2)


def test_factor_one_is_refused() -> None:
    with pytest.raises(ValueError, match="factor must be >= 2"):
        FusedUpsampleConv2d(2, 3, 4, 1)


# --- a stage with the tiled code, and the whole generator -------------------------------------


@pytest.mark.parametrize("fused_upsample, fold_code", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize(
    "features, code, out, size", [(64, 64, 256, 4), (256, 64, 128, 8), (5, 3, 4, 1), (5, 3, 4, 7)]
)
def test_stage_with_code_matches_plain(
    features: int, code: int, out: int, size: int, fused_upsample: bool, fold_code: bool
) -> None:
    torch.manual_seed(0)
    fused = UpStage(features + code, out, 2, fused_upsample, fold_code).double()
    plain = UpStage(features + code, out, 2, fused=False, fold_code=False).double()
    assert isinstance(fused.conv, FusedUpsampleConv2d) == fused_upsample
    assert not isinstance(plain.conv, FusedUpsampleConv2d)
    nn.init.normal_(fused.conv.bias)
    plain.load_state_dict(fused.state_dict())
    inputs = [torch.randn(2, features, size, size), torch.randn(2, code)]  # features, code
    inputs = [x.double() for x in inputs]
    torch.manual_seed(1)
    grad = torch.randn(2, out, 2 * size, 2 * size, dtype=torch.float64)
    expected = outputs_and_grads(plain, inputs, plain, grad)
    for got, want in zip(outputs_and_grads(fused, inputs, fused, grad), expected):
        assert_close(got, want, F64)


#: The rewrites G can run with; the last is the plain reference arithmetic.
REWRITES = [{}, {"fold_code": False}, {"fused_upsample": False}]
PLAIN = {"fused_upsample": False, "fold_code": False}


def generators(size: int, latent: int = 16, **rewrites: bool) -> tuple[AEGANGenerator, AEGANGenerator]:
    """Full-size G with `rewrites` (default: all on) and plain, from the same seed (same weights)."""
    z = Gaussian("z", dim=latent)
    torch.manual_seed(0)
    fused = AEGANGenerator(z, Images(size), **rewrites)
    torch.manual_seed(0)
    return fused, AEGANGenerator(z, Images(size), **PLAIN)


def test_both_rewrites_are_on_by_default() -> None:
    fused, plain = generators(32)
    assert all(stage.fold_code for stage in fused.stages) and fused.fold_code
    assert not any(stage.fold_code for stage in plain.stages) and not plain.fold_code


@pytest.mark.parametrize("rewrites", REWRITES)
@pytest.mark.parametrize("size", [32, 64, 128])
def test_generator_fused_and_plain_give_the_same_images(size: int, rewrites: dict[str, bool]) -> None:
    fused, plain = generators(size, **rewrites)
    fusions = [stage.fused for stage in fused.stages]
    expected = [stage.factor > 1 and rewrites.get("fused_upsample", True) for stage in fused.stages]
    assert fusions == expected and not any(s.fused for s in plain.stages)
    torch.testing.assert_close(fused.state_dict(), plain.state_dict(), atol=0, rtol=0)
    z = torch.randn(2 if size < 128 else 1, 16)
    with torch.no_grad():
        # G has no training-mode noise, so both modes must agree without reseeding.
        for mode in (False, True):
            assert_close(fused.train(mode)(z), plain.train(mode)(z), F32)


@pytest.mark.parametrize("rewrites", REWRITES)
def test_generator_gradients_match_in_float64(rewrites: dict[str, bool]) -> None:
    fused, plain = (net.double() for net in generators(32, **rewrites))
    z = torch.randn(2, 16, dtype=torch.float64)
    torch.manual_seed(1)
    grad = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    got, want = outputs_and_grads(fused, [z], fused, grad), outputs_and_grads(plain, [z], plain, grad)
    assert len(got) == len(want) == 2 + len(list(plain.parameters()))
    for a, b in zip(got, want):
        assert_close(a, b, F64)


def test_state_dicts_are_interchangeable() -> None:
    fused, plain = generators(64)
    shapes = [{k: v.shape for k, v in net.state_dict().items()} for net in (fused, plain)]
    assert shapes[0] == shapes[1]
    torch.manual_seed(5)
    other = AEGANGenerator(Gaussian("z", dim=16), Images(64), **PLAIN)
    fused.load_state_dict(other.state_dict())
    plain.load_state_dict(fused.state_dict())
    z = torch.randn(2, 16)
    with torch.no_grad():
        assert_close(fused(z), other(z), F32)
        torch.testing.assert_close(plain(z), other(z), atol=0, rtol=0)
