"""A per-sample code tiled over the grid and concatenated as conv input channels, against the
folded form that applies those channels without tiling (layers.constant_image_conv)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from cyclegen_aegan.fused import FusedUpsampleConv2d
from cyclegen_aegan.layers import SameConv2d, constant_image_conv, same_padding

F64 = 1e-11


def tiled(features: Tensor, code: Tensor) -> Tensor:
    return torch.cat([features, code[:, :, None, None].expand(-1, -1, *features.shape[2:])], 1)


def assert_close(got: Tensor, want: Tensor) -> None:
    torch.testing.assert_close(got, want, atol=F64 * want.abs().max().item(), rtol=0)


@pytest.mark.parametrize("kernel", [1, 3, 4, 5])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("height, width", [(1, 1), (2, 5), (7, 4), (16, 16)])
def test_constant_image_conv_is_the_conv_of_the_tiled_code(kernel: int, stride: int, height: int, width: int) -> None:
    """Every border case: kernels wider than the image, asymmetric TF padding, strides."""
    torch.manual_seed(0)
    code = torch.randn(3, 5, dtype=torch.float64)
    weight = torch.randn(4, 5, kernel, kernel, dtype=torch.float64)
    top, bottom = same_padding(height, kernel, stride)
    left, right = same_padding(width, kernel, stride)
    image = code[:, :, None, None].expand(-1, -1, height, width)
    want = F.conv2d(F.pad(image, (left, right, top, bottom)), weight, stride=stride)
    got = constant_image_conv(code, weight, (height, width), stride, (top, left), want.shape[-2:])
    assert got.shape == want.shape
    assert_close(got, want)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [1, 5, 8])
def test_same_conv_with_code_matches_the_concatenation(stride: int, size: int) -> None:
    torch.manual_seed(0)
    conv = SameConv2d(6 + 3, 4, 4, stride).double()
    features = torch.randn(2, 6, size, size + 1, dtype=torch.float64, requires_grad=True)
    code = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    grad = None
    results = []
    for folded in (True, False):
        conv.zero_grad()
        features.grad = code.grad = None
        out = conv(features, code) if folded else conv(tiled(features, code))
        grad = torch.randn_like(out) if grad is None else grad
        out.backward(grad)
        results.append([out.detach(), features.grad, code.grad, conv.weight.grad, conv.bias.grad])
    for got, want in zip(*results):
        assert_close(got, want)


def test_fused_upsample_with_code_matches_upsampling_the_concatenation() -> None:
    torch.manual_seed(0)
    fused = FusedUpsampleConv2d(6 + 3, 4, 4, 2).double()
    plain = SameConv2d(6 + 3, 4, 4).double()
    plain.load_state_dict(fused.state_dict())
    features = torch.randn(2, 6, 5, 3, dtype=torch.float64)
    code = torch.randn(2, 3, dtype=torch.float64)
    want = plain(F.interpolate(tiled(features, code), scale_factor=2, mode="nearest"))
    assert_close(fused(features, code), want)


def test_code_and_features_must_fill_the_conv_input() -> None:
    conv = SameConv2d(6 + 3, 4, 4)
    with pytest.raises(ValueError, match="6 feature \\+ 2 code channels given, the conv takes 9"):
        conv(torch.randn(1, 6, 4, 4), torch.randn(1, 2))


def test_coverage_cached_under_inference_mode_still_trains() -> None:
    """The coverage matrices are cached; one first built under inference_mode must not be an
    inference tensor, or the next training step could not save it for backward."""
    conv = SameConv2d(6 + 3, 4, 4).double()
    features, code = torch.randn(2, 6, 11, 13, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    with torch.inference_mode():
        conv(features, code)
    code.requires_grad_()
    conv(features, code).square().sum().backward()
    assert code.grad is not None and conv.weight.grad is not None
