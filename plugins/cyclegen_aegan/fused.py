"""Nearest upsampling followed by a "same" convolution, computed exactly on the low-res input.

Upsampling by f repeats every pixel f x f times, so each output pixel of the convolution reads
only a few distinct low-res pixels, and taps reading the same one can be summed first. Along
one axis, a stride-1 kernel of size K with `before` pixels of TensorFlow padding gives output
i = f*m + r (phase r) as sum_k w[k] * up[f*m + r - before + k], and up[j] = x[j // f], so
tap k reads low-res offset (r - before + k) // f from m. For the AEGAN's K = 4, f = 2,
before = 1 (after = 2):

    phase 0 reads offsets (-1, 0, +1) with weights (w0, w1 + w2, w3)
    phase 1 reads offsets (0, +1)     with weights (w0 + w1, w2 + w3)

In 2-D that is 9 + 6 + 6 + 4 = 25 taps per 2x2 output block instead of 64. Borders are exact
too: j lies outside [0, f*n) exactly when j // f lies outside [0, n), so the zero padding of
the upsampled image is zero padding of the low-res input (1 pixel each side here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cyclegen_aegan.layers import SameConv2d, same_padding


def phase_taps(kernel: int, factor: int, before: int) -> tuple[Tensor, int, int]:
    """Which low-res offset each kernel tap reads, per output phase, along one axis.

    Returns (taps, pad_before, pad_after): taps[r, t, k] = 1 where tap k of phase r reads
    low-res offset t - pad_before, and the low-res zero padding those offsets need.
    """
    offsets = [[(r - before + k) // factor for k in range(kernel)] for r in range(factor)]
    low = min(min(row) for row in offsets)
    high = max(max(row) for row in offsets)
    taps = torch.zeros(factor, high - low + 1, kernel)
    for r, row in enumerate(offsets):
        for k, offset in enumerate(row):
            taps[r, offset - low, k] = 1.0
    return taps, -low, high


class FusedUpsampleConv2d(SameConv2d):
    """Nearest upsampling by `factor`, then a stride-1 SameConv2d, as one low-res convolution.

    Exact (up to float rounding of the summed taps) for any kernel size and integer factor.
    Holds exactly the plain SameConv2d's parameters (same state_dict keys and shapes), and
    sums them into phase kernels on every call, so autograd gives the 4x4 weight its gradient.
    The f*f phase kernels, zero-padded to a common span, run as a single convolution with
    f*f*out channels whose output pixel_shuffle interleaves. For the AEGAN that is a 3x3 conv
    (36 taps, 56% of the plain 64). Indicative timings, one CPU thread on a busy 2-core machine,
    forward+backward of the full-size G's upsampling convs at batch 16 with the code tiled as
    in UpStage, medians of 9 (ms; plain / four 3x3, 3x2, 2x3, 2x2 convs + interleave / this):

        128 -> 256 at  4 ->  8:    43 /  57 /  40
        320 -> 128 at  8 -> 16:   203 / 135 / 120
        192 -> 128 at 16 -> 32:   344 / 169 / 159
        192 ->  64 at 32 -> 64:  1225 / 609 / 526
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, factor: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size)
        if factor < 2:
            raise ValueError(f"factor must be >= 2, got {factor}")
        self.factor = factor
        # Stride 1 pads K - 1 in total whatever the size, so the phases are fixed at build time.
        before, _ = same_padding(factor, kernel_size, 1)
        taps, self.pad_before, self.pad_after = phase_taps(kernel_size, factor, before)
        self.register_buffer("taps", taps, persistent=False)

    def phase_weight(self, weight: Tensor | None = None) -> Tensor:
        """The (out * f * f, in, span, span) kernel, channels ordered as pixel_shuffle reads them.

        `weight` defaults to the layer's own; a slice of its input channels gives theirs.
        """
        weight = self.weight if weight is None else weight
        span = self.taps.shape[1]
        phases = torch.einsum("ytk,xsl,oikl->oyxits", self.taps, self.taps, weight)
        return phases.reshape(-1, weight.shape[1], span, span)

    def forward(self, x: Tensor, code: Tensor | None = None) -> Tensor:
        """Upsample `x`, then convolve; `code` (N, D) as in SameConv2d.forward."""
        weight = self.phase_weight(None if code is None else self.feature_weight(x, code))
        bias = self.bias.repeat_interleave(self.factor**2)  # SameConv2d always has a bias
        if self.pad_before == self.pad_after:
            out = F.conv2d(x, weight, bias, padding=self.pad_before)
        else:
            pads = (self.pad_before, self.pad_after) * 2
            out = F.conv2d(F.pad(x, pads), weight, bias)
        out = F.pixel_shuffle(out, self.factor)
        if code is None:
            return out
        # The code tiled over the upsampled grid is the code tiled over the low-res one, upsampled,
        # and this layer's stride-1 conv reads the upsampled grid.
        return out + self.code_response(code, x.shape[1], out.shape[-2:], out.shape[-2:])

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, factor={self.factor}"
