"""The FID Inception-v3: the network behind pytorch-fid and torch-fidelity, written from its
published description (Szegedy et al. 2016; Heusel et al. 2017, whose FID is defined on the
2,048 pool features of TensorFlow's 2015-12-05 Inception graph).

It is the torchvision layout of Inception-v3 as that graph has it: no auxiliary head, 1,008
classes, average pools that leave padding out of the mean, and a max pool in the pool branch
of the last block. Module names are those of the published weights file, so its state dict
loads as it is. Pools have no weights, so they are functions here, not modules.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: The side the network was trained at; every image is resized to it.
INPUT_SIZE = 299
#: The length of the pool features FID compares.
FEATURES = 2048
CLASSES = 1008

Size = int | tuple[int, int]


class ConvBN(nn.Module):
    """Convolution without bias, batch norm (TensorFlow's epsilon of 0.001), ReLU."""

    def __init__(self, inputs: int, outputs: int, kernel: Size, stride: int = 1, padding: Size = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(inputs, outputs, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(outputs, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _chain(x: Tensor, *layers: nn.Module) -> Tensor:
    for layer in layers:
        x = layer(x)
    return x


def _mean_pool(x: Tensor) -> Tensor:
    """3x3 average of the real neighbours only, as TensorFlow pools at the borders."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _factorised(inputs: int, outputs: int, length: int, first: Literal["row", "column"]) -> list[ConvBN]:
    """A length x length convolution factorised into a 1 x length and a length x 1 one."""
    row = dict(kernel=(1, length), padding=(0, length // 2))
    column = dict(kernel=(length, 1), padding=(length // 2, 0))
    a, b = (row, column) if first == "row" else (column, row)
    return [ConvBN(inputs, inputs, **a), ConvBN(inputs, outputs, **b)]


class MixedA(nn.Module):
    """The 35 x 35 blocks (Mixed_5b to 5d): 1x1, 5x5, double 3x3 and pool branches."""

    def __init__(self, inputs: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(inputs, 64, 1)
        self.branch5x5_1 = ConvBN(inputs, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(inputs, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(inputs, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [
                self.branch1x1(x),
                _chain(x, self.branch5x5_1, self.branch5x5_2),
                _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
                self.branch_pool(_mean_pool(x)),
            ],
            1,
        )


class ReductionA(nn.Module):
    """Mixed_6a: 35 x 35 to 17 x 17 by strided 3x3, strided double 3x3 and max-pool branches."""

    def __init__(self, inputs: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBN(inputs, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(inputs, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [
                self.branch3x3(x),
                _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
                F.max_pool2d(x, 3, stride=2),
            ],
            1,
        )


class MixedC(nn.Module):
    """The 17 x 17 blocks (Mixed_6b to 6e): 7x7 convolutions factorised into 1x7 and 7x1."""

    def __init__(self, inputs: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = ConvBN(inputs, 192, 1)
        self.branch7x7_1 = ConvBN(inputs, c7, 1)
        self.branch7x7_2, self.branch7x7_3 = _factorised(c7, 192, 7, first="row")
        self.branch7x7dbl_1 = ConvBN(inputs, c7, 1)
        self.branch7x7dbl_2, self.branch7x7dbl_3 = _factorised(c7, c7, 7, first="column")
        self.branch7x7dbl_4, self.branch7x7dbl_5 = _factorised(c7, 192, 7, first="column")
        self.branch_pool = ConvBN(inputs, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        double = (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4)
        return torch.cat(
            [
                self.branch1x1(x),
                _chain(x, self.branch7x7_1, self.branch7x7_2, self.branch7x7_3),
                _chain(x, *double, self.branch7x7dbl_5),
                self.branch_pool(_mean_pool(x)),
            ],
            1,
        )


class ReductionB(nn.Module):
    """Mixed_7a: 17 x 17 to 8 x 8 by a strided 3x3, a factorised 7x7 then strided 3x3, and a max pool."""

    def __init__(self, inputs: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(inputs, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(inputs, 192, 1)
        self.branch7x7x3_2, self.branch7x7x3_3 = _factorised(192, 192, 7, first="row")
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        seven = (self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4)
        return torch.cat(
            [_chain(x, self.branch3x3_1, self.branch3x3_2), _chain(x, *seven), F.max_pool2d(x, 3, stride=2)], 1
        )


class MixedE(nn.Module):
    """The 8 x 8 blocks (Mixed_7b, 7c), whose 3x3 branches split into parallel 1x3 and 3x1.

    `pool` is "mean" in Mixed_7b and "max" in Mixed_7c: the 2015 graph max-pools there
    (pytorch-fid calls it a likely error in that graph; FID is defined with it).
    """

    def __init__(self, inputs: int, pool: Literal["mean", "max"]) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = ConvBN(inputs, 320, 1)
        self.branch3x3_1 = ConvBN(inputs, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(inputs, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(inputs, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        single = self.branch3x3_1(x)
        double = _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2)
        pooled = _mean_pool(x) if self.pool == "mean" else F.max_pool2d(x, 3, stride=1, padding=1)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(single),
                self.branch3x3_2b(single),
                self.branch3x3dbl_3a(double),
                self.branch3x3dbl_3b(double),
                self.branch_pool(pooled),
            ],
            1,
        )


class FIDInceptionV3(nn.Module):
    """Inception-v3 from a (N, 3, 299, 299) batch scaled to [-1, 1] to its (N, 2048) pool features.

    `fc` (the 1,008-way classifier) is not used for FID; it is kept so that the published
    weights load strictly and the parameter count matches the published model.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = MixedA(192, pool_features=32)
        self.Mixed_5c = MixedA(256, pool_features=64)
        self.Mixed_5d = MixedA(288, pool_features=64)
        self.Mixed_6a = ReductionA(288)
        self.Mixed_6b = MixedC(768, channels_7x7=128)
        self.Mixed_6c = MixedC(768, channels_7x7=160)
        self.Mixed_6d = MixedC(768, channels_7x7=160)
        self.Mixed_6e = MixedC(768, channels_7x7=192)
        self.Mixed_7a = ReductionB(768)
        self.Mixed_7b = MixedE(1280, pool="mean")
        self.Mixed_7c = MixedE(2048, pool="max")
        self.fc = nn.Linear(FEATURES, CLASSES)

    def stem(self, x: Tensor) -> Tensor:
        """299 x 299 x 3 to 35 x 35 x 192."""
        x = _chain(x, self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3)
        x = F.max_pool2d(x, 3, stride=2)
        x = _chain(x, self.Conv2d_3b_1x1, self.Conv2d_4a_3x3)
        return F.max_pool2d(x, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = _chain(x, self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a)
        x = _chain(x, self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e)
        x = _chain(x, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c)
        return x.mean((2, 3))


def tensorflow_bilinear(size_in: int, size_out: int) -> Tensor:
    """TensorFlow 1's bilinear resize along one axis as a (size_out, size_in) matrix.

    TF1's `resize_bilinear` without `align_corners` or half-pixel centres samples output
    pixel i at input position i * size_in / size_out, interpolating towards the next pixel
    and repeating the last one at the edge; the original FID code resized with it, as
    torch-fidelity reproduces.
    """
    position = torch.arange(size_out, dtype=torch.float64) * (size_in / size_out)
    left = position.floor().long().clamp(max=size_in - 1)
    right = (left + 1).clamp(max=size_in - 1)
    weight = position - left
    matrix = torch.zeros(size_out, size_in, dtype=torch.float64)
    rows = torch.arange(size_out)
    matrix.index_put_((rows, left), 1 - weight, accumulate=True)
    matrix.index_put_((rows, right), weight, accumulate=True)
    return matrix


Preprocess = Literal["torch-fidelity", "pytorch-fid"]


def network_input(pixels: Tensor, preprocess: Preprocess) -> Tensor:
    """(N, 3, H, W) uint8 images to the network's (N, 3, 299, 299) input, as the named tool does.

    torch-fidelity (and so torchmetrics' default FID): TensorFlow 1's bilinear resize of the
    0-255 values, then (x - 128) / 128. pytorch-fid: x / 255, torch's bilinear resize
    (half-pixel centres), then 2x - 1. The two give slightly different FIDs.
    """
    x = pixels.float()
    if preprocess == "torch-fidelity":
        height, width = x.shape[-2:]
        rows = tensorflow_bilinear(height, INPUT_SIZE).to(x)
        columns = tensorflow_bilinear(width, INPUT_SIZE).to(x)
        return (rows @ x @ columns.T - 128) / 128
    x = F.interpolate(x / 255, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return 2 * x - 1
