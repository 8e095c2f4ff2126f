"""The digit classifier that labels each channel of a Stacked MNIST sample.

A small CNN on padded 32x32 single-channel digits in [-1, 1], the scale the domain and the
generators use, so generated channels are classified as they come. It is trained by this
project (`python -m cyclegen_mnist.train_classifier`), not downloaded, and its weights ship
with the plugin as `classifier.safetensors` (float32 tensors, no pickle).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

SHIPPED = Path(__file__).resolve().with_name("classifier.safetensors")
#: Names another weights file for every stacked-mnist domain that does not name one.
CLASSIFIER_ENV = "CYCLEGEN_MNIST_CLASSIFIER"
RETRAIN = "python -m cyclegen_mnist.train_classifier --data PATH/mnist.npz --out FILE"
#: Digits classified at once: small enough for the activations to stay in cache (the fastest measured
#: on one CPU thread; 1,024 at once took twice as long).
CHUNK = 256


def block(inputs: int, outputs: int) -> list[nn.Module]:
    """3x3 conv, BatchNorm, 2x2 max pooling, ReLU: halves the size. Pooling before the ReLU gives
    the same result (both take maxima) with a quarter of the ReLU's work."""
    return [nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.MaxPool2d(2), nn.ReLU()]


class DigitClassifier(nn.Sequential):
    """(N, 1, 32, 32) digits in [-1, 1] -> (N, 10) logits: three conv blocks (32 -> 4 pixels), one linear layer.

    About 34,000 parameters and 2.5 million multiply-adds a digit, so the 78,000 digits of 26,000
    stacked samples take seconds on one CPU thread.
    """

    def __init__(self) -> None:
        super().__init__(*block(1, 16), *block(16, 32), *block(32, 64), nn.Flatten(), nn.Dropout(0.2),
                         nn.Linear(64 * 4 * 4, 10))


def classifier_path(path: str | Path | None = None) -> Path:
    """`path`, else $CYCLEGEN_MNIST_CLASSIFIER, else the shipped weights; `~` expanded."""
    return Path(path or os.environ.get(CLASSIFIER_ENV) or SHIPPED).expanduser()


def load_classifier(path: str | Path | None = None) -> DigitClassifier:
    """The classifier with the weights at `classifier_path(path)`, in eval mode, on the CPU."""
    file = classifier_path(path)
    fix = (f"reinstall cyclegen (the plugin ships {SHIPPED.name}), point {CLASSIFIER_ENV} or the domain's "
           f"`classifier` at a good file, or train one: {RETRAIN}")
    if not file.is_file():
        raise ValueError(f"MNIST classifier weights {file} not found; {fix}")
    model = DigitClassifier()
    try:
        model.load_state_dict(load_file(file))
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise ValueError(f"MNIST classifier weights {file} are unreadable or do not fit the network ({exc}); "
                         f"{fix}") from None
    return model.eval()


@torch.inference_mode()
def classify(model: nn.Module, digits: Tensor) -> tuple[Tensor, Tensor]:
    """Labels (N,) and their softmax probability (N,) for (N, 1, 32, 32) digits, in chunks.

    Channels-last memory makes the convolutions about twice as fast on a CPU."""
    model = model.to(memory_format=torch.channels_last)
    labels, confidence = [torch.zeros(0, dtype=torch.long)], [torch.zeros(0)]
    for chunk in digits.split(CHUNK):
        probabilities = model(chunk.float().contiguous(memory_format=torch.channels_last)).softmax(1)
        best, label = probabilities.max(1)
        labels.append(label)
        confidence.append(best)
    return torch.cat(labels), torch.cat(confidence)
