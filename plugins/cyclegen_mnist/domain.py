"""The Stacked MNIST domain: three independent MNIST digits as the colour channels of one image."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from cyclegen_images.domain import to_float
from cyclegen_images.grid import save_grid
from cyclegen_images.metrics import PSNR, ReconstructionL1
from torch import Tensor

from cyclegen import Domain, Metric, PairMetric
from cyclegen_mnist.classifier import load_classifier
from cyclegen_mnist.data import SIZE, load_mnist
from cyclegen_mnist.metrics import DIGITS, StackedModes


class StackedMNIST(Domain):
    """Stacked MNIST (VEEGAN, PacGAN, PresGAN): three MNIST digits as the R, G and B channels, 1,000 modes.

    Every sample stacks three digits, each drawn uniformly and independently (with replacement)
    from the split's images, so its mode, the triple of their labels, is one of 1,000. The
    28x28 digits are zero-padded by 2 pixels on every side to 32x32 (padded, not resized: the
    strokes keep MNIST's scale) and scaled to [-1, 1] like the image domain. Split "train" draws
    from MNIST's 60,000 training digits, "test" from its 10,000 test digits. The file is read and
    checked once, into uint8 tensors; a batch is an index and a float conversion. The domain's
    metric is `stacked-modes` (modes covered, KL from uniform), which labels each channel with a
    small CNN trained by this project (`python -m cyclegen_mnist.train_classifier`; the shipped
    weights reach 99.4% on the MNIST test set).

    Options:
        source: The `mnist.npz` file (x_train, y_train, x_test, y_test, as Keras publishes it;
            README, section Data); a relative path is relative to the current folder, and `~`
            is expanded.
        classifier: The digit classifier's weights for the `stacked-modes` metric: a
            .safetensors file written by `python -m cyclegen_mnist.train_classifier`; unset,
            $CYCLEGEN_MNIST_CLASSIFIER, else the weights shipped with the plugin.
    """

    can_show: ClassVar[bool] = True

    def __init__(self, name: str, source: str = "data/mnist.npz", classifier: str | None = None) -> None:
        super().__init__(name, (DIGITS, SIZE, SIZE))
        self.splits = load_mnist(source, fix=f"point the recipe at it: --set domains.{name}.source=PATH")
        self.classifier = load_classifier(classifier)  # now, so a bad file fails before training, not after

    def batch_with_labels(self, n: int, generator: torch.Generator, split: str = "train") -> tuple[Tensor, Tensor]:
        """`n` samples (n, 3, 32, 32) and the true labels of their channels (n, 3); `batch` draws the same."""
        digits = self.splits[split]
        chosen = torch.randint(len(digits.labels), (n, DIGITS), generator=generator)
        return to_float(digits.pixels[chosen]), digits.labels[chosen]

    def batch(self, n: int, generator: torch.Generator, split: str = "train") -> Tensor:
        return self.batch_with_labels(n, generator, split)[0]

    def show(self, samples: Tensor, path: Path, columns: int | None = None, *, title: str | None = None) -> Path:
        return save_grid(samples, path, columns, title=title)

    def metrics(self) -> list[Metric]:
        return [StackedModes(self.classifier)]

    def pair_metrics(self) -> list[PairMetric]:
        return [ReconstructionL1(), PSNR()]
