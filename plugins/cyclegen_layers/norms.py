"""Per-pixel layer normalisation (Keras semantics) and the DCGAN weight initialisation."""

from __future__ import annotations

from torch import Tensor, nn

#: Keras LayerNormalization's default epsilon (torch's is 1e-5).
KERAS_EPS = 1e-3


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of every pixel separately (a channels-last LayerNorm)."""

    def __init__(self, channels: int, eps: float = KERAS_EPS) -> None:
        super().__init__(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def normal_init(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) kernels and zero biases for every conv and dense layer inside `module`."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
