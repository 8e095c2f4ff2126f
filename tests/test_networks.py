"""The conv network plugins: the AEGAN reference networks pinned to the published code, and
the DCGAN family. Small batches and narrow widths keep this file fast on a CPU."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cyclegen import Domain
from cyclegen.errors import RecipeError
from cyclegen.plugins import load_plugins
from cyclegen_aegan.layers import GaussianDropout, GaussianNoise, SameConv2d, same_padding
from cyclegen_aegan.networks import AEGANEncoder, AEGANGenerator, AEGANImageCritic, AEGANLatentCritic
from cyclegen_dcgan.networks import DCGANCritic, DCGANEncoder, DCGANGenerator
from cyclegen_layers import ChannelLayerNorm
from cyclegen_priors import Gaussian

REGISTRY = load_plugins().registry


class Images(Domain):
    """A stand-in image domain: only its shape matters to the networks."""

    def __init__(self, size: int = 64, channels: int = 3, height: int | None = None) -> None:
        super().__init__("x", (channels, height or size, size))

    def batch(self, n: int, generator: torch.Generator, split: str = "train") -> Tensor:
        return torch.rand(n, *self.shape, generator=generator) * 2 - 1


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def aegan(latent: int, image: Domain, width: float = 1.0) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
    z = Gaussian("z", dim=latent)
    return (
        AEGANGenerator(z, image, width=width),
        AEGANEncoder(image, z, width=width),
        AEGANImageCritic(image, width=width),
        AEGANLatentCritic(z, width=width),
    )


# --- the reference networks ------------------------------------------------------------


@pytest.mark.parametrize(
    "latent, expected",
    [(32, (1_946_691, 1_381_664, 708_545, 76_801)), (16, (1_929_283, 1_316_112, 708_545, 70_657))],
)
def test_parameter_counts_match_the_reference(latent: int, expected: tuple[int, ...]) -> None:
    assert tuple(count(net) for net in aegan(latent, Images(64))) == expected
    plain = AEGANGenerator(Gaussian("z", dim=latent), Images(64), fused_upsample=False)
    assert count(plain) == expected[0]  # fusing the upsampling changes the arithmetic, not the parameters


@pytest.mark.parametrize("width", [1.0, 0.25])
@pytest.mark.parametrize("size, channels", [(32, 1), (64, 3), (128, 3)])
def test_aegan_output_shapes(size: int, channels: int, width: float) -> None:
    torch.manual_seed(0)
    image = Images(size, channels)
    g, e, dx, dz = (net.eval() for net in aegan(8, image, width))
    batch = 1 if size == 128 and width == 1.0 else 2
    z = torch.randn(batch, 8)
    with torch.no_grad():
        x = g(z)
        assert x.shape == (batch, channels, size, size)
        assert x.abs().max() <= 1
        assert e(x).shape == (batch, 8)
        assert dx(x).shape == (batch,)
        assert dz(z).shape == (batch,)


def test_width_shrinks_every_stack_but_never_to_zero() -> None:
    full, narrow = aegan(32, Images(64)), aegan(32, Images(64), width=0.25)
    assert all(count(n) < count(f) / 4 for n, f in zip(narrow[:3], full[:3]))
    assert count(narrow[3]) < count(full[3])
    g, _, _, dz = aegan(4, Images(32), width=0.001)
    assert g(torch.randn(2, 4)).shape == (2, 3, 32, 32)
    assert dz(torch.randn(2, 4)).shape == (2,)


# --- Keras layer semantics ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kernel, stride, pads",
    [(4, 1, (1, 2)), (4, 2, (1, 1)), (3, 2, (0, 1)), (3, 1, (1, 1))],
)
def test_same_padding_matches_tensorflow(kernel: int, stride: int, pads: tuple[int, int]) -> None:
    assert same_padding(8, kernel, stride) == pads
    torch.manual_seed(0)
    conv = SameConv2d(2, 3, kernel, stride)
    x = torch.randn(1, 2, 8, 8)
    before, after = pads
    expected = F.conv2d(F.pad(x, (before, after, before, after)), conv.weight, conv.bias, stride)
    torch.testing.assert_close(conv(x), expected)
    for size in (8, 9):
        assert conv(torch.randn(1, 2, size, size)).shape[-2:] == (math.ceil(size / stride),) * 2


def test_same_padding_on_odd_sizes() -> None:
    assert same_padding(9, 4, 2) == (1, 2)
    assert same_padding(9, 3, 2) == (1, 1)
    assert same_padding(5, 1, 1) == (0, 0)


def test_channel_layer_norm_normalises_each_pixel_over_channels() -> None:
    torch.manual_seed(0)
    norm = ChannelLayerNorm(6)
    x = torch.randn(2, 6, 5, 5) * 3 + torch.arange(6.0).view(1, 6, 1, 1)
    y = norm(x)
    torch.testing.assert_close(y.mean(1), torch.zeros(2, 5, 5), atol=1e-5, rtol=0)
    var = x.var(1, unbiased=False)
    torch.testing.assert_close(y.var(1, unbiased=False), var / (var + 1e-3), atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        norm.weight.fill_(2.0)
        norm.bias.fill_(-1.0)
    torch.testing.assert_close(norm(x), 2 * y - 1)


def test_noise_layers_have_the_keras_scales() -> None:
    torch.manual_seed(0)
    ones = torch.ones(200_000)
    assert (GaussianNoise(0.01)(ones) - 1).std().item() == pytest.approx(0.01, rel=0.02)
    assert GaussianDropout(0.005)(ones).std().item() == pytest.approx(math.sqrt(0.005 / 0.995), rel=0.02)
    assert torch.equal(GaussianNoise(0.01).eval()(ones), ones)
    assert torch.equal(GaussianDropout(0.005).eval()(ones), ones)


def test_noise_is_on_in_training_and_off_in_eval() -> None:
    torch.manual_seed(0)
    image, latent = Images(32), Gaussian("z", dim=8)
    x, z = torch.rand(2, *image.shape) * 2 - 1, torch.randn(2, 8)

    def noisy(**options: float) -> list[tuple[nn.Module, Tensor]]:
        return [
            (AEGANEncoder(image, latent, width=0.25, **options), x),
            (AEGANImageCritic(image, width=0.25, **options), x),
            (AEGANLatentCritic(latent, width=0.25, **options), z),
        ]

    for net, inputs in noisy():
        net.train()
        assert not torch.equal(net(inputs), net(inputs)), type(net).__name__
        net.eval()
        assert torch.equal(net(inputs), net(inputs)), type(net).__name__
    for net, inputs in noisy(noise=0.0, dropout=0.0):
        assert torch.equal(net.train()(inputs), net(inputs)), type(net).__name__


def test_initialisation() -> None:
    torch.manual_seed(0)
    g, e, dx, dz = aegan(32, Images(64))
    big = g.stages[1].conv  # 320 -> 128, 4x4: 655k weights
    assert big.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert big.weight.mean().abs().item() < 1e-3
    assert torch.count_nonzero(big.bias) == 0
    assert g.main[0].weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert e.head.weight.std().item() == pytest.approx(0.02, rel=0.05)
    glorot = [g.branch[0]] + [m for m in dz.modules() if isinstance(m, nn.Linear)]
    for layer in glorot:
        bound = math.sqrt(6 / (layer.in_features + layer.out_features))
        assert layer.weight.abs().max().item() <= bound
        assert layer.weight.abs().max().item() > 0.9 * bound
        assert torch.count_nonzero(layer.bias) == 0


def test_gradients_reach_every_parameter_of_g_and_e() -> None:
    torch.manual_seed(0)
    image = Images(64)
    g, e, _, _ = aegan(8, image, width=0.25)
    x, z = torch.rand(4, *image.shape) * 2 - 1, torch.randn(4, 8)
    loss = (g(e(x)) - x).abs().mean() + (e(g(z)) - z).pow(2).mean()
    loss.backward()
    for name, net in (("G", g), ("E", e)):
        for param_name, param in net.named_parameters():
            assert param.grad is not None and param.grad.abs().sum() > 0, f"{name}.{param_name}"


# --- the DCGAN family --------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_dcgan_shapes(size: int, norm: str) -> None:
    torch.manual_seed(0)
    image, z = Images(size, 1 if size == 32 else 3), Gaussian("z", dim=8)
    g = DCGANGenerator(z, image, base=4, norm=norm)
    e = DCGANEncoder(image, z, base=4, norm=norm)
    d = DCGANCritic(image, base=4, norm=norm)
    x = g(torch.randn(2, 8))
    assert x.shape == (2, *image.shape) and x.abs().max() <= 1
    assert e(x).shape == (2, 8)
    assert d(x).shape == (2,)
    assert g.body[-2].weight.std().item() == pytest.approx(0.02, rel=0.5)


def test_dcgan_defaults_and_stage_layout() -> None:
    image, z = Images(64), Gaussian("z", dim=32)
    g, e, d = DCGANGenerator(z, image), DCGANEncoder(image, z), DCGANCritic(image)
    transposed = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [m.out_channels for m in transposed] == [512, 256, 128, 64]
    assert g.project.out_features == 1024 * 16
    assert any(isinstance(m, nn.BatchNorm2d) for m in g.modules())
    assert [m.out_channels for m in e.modules() if isinstance(m, nn.Conv2d)] == [64, 128, 256, 512]
    assert any(isinstance(m, ChannelLayerNorm) for m in e.modules())
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)) for m in d.modules())


# --- errors and registration ---------------------------------------------------------------

IMAGE_NETWORKS = {
    "aegan-generator": lambda image, z: AEGANGenerator(z, image),
    "aegan-encoder": lambda image, z: AEGANEncoder(image, z),
    "aegan-image-critic": lambda image, z: AEGANImageCritic(image),
    "dcgan-generator": lambda image, z: DCGANGenerator(z, image),
    "dcgan-encoder": lambda image, z: DCGANEncoder(image, z),
    "dcgan-critic": lambda image, z: DCGANCritic(image),
}


@pytest.mark.parametrize("network", IMAGE_NETWORKS)
@pytest.mark.parametrize("image", [Images(48), Images(64, height=32), Images(16)], ids=["48", "64x32", "16"])
def test_unsupported_image_sizes_raise(network: str, image: Domain) -> None:
    with pytest.raises(ValueError, match=r"32, 64, 128"):
        IMAGE_NETWORKS[network](image, Gaussian("z", dim=8))


def test_latent_networks_reject_image_domains() -> None:
    with pytest.raises(ValueError, match=r"\(D,\)"):
        AEGANLatentCritic(Images(64))
    with pytest.raises(ValueError, match="width must be > 0"):
        AEGANLatentCritic(Gaussian("z", dim=8), width=0)


def test_components_are_registered_with_their_options() -> None:
    image, z = Images(32), Gaussian("z", dim=8)
    g = REGISTRY.build("mapper", "aegan-generator", "mappers.G", {"width": 0.25}, source=z, target=image)
    assert isinstance(g, AEGANGenerator)
    assert [stage.fused for stage in g.stages] == [True, True, True, False, False]  # 32 px: three 2x stages
    options = {"fused_upsample": False}
    plain = REGISTRY.build("mapper", "aegan-generator", "mappers.G", options, source=z, target=image)
    assert not any(stage.fused for stage in plain.stages)
    for kind, name, context in [
        ("mapper", "aegan-encoder", {"source": image, "target": z}),
        ("critic", "aegan-image-critic", {"domain": image}),
        ("critic", "aegan-latent-critic", {"domain": z}),
        ("mapper", "dcgan-generator", {"source": z, "target": image}),
        ("mapper", "dcgan-encoder", {"source": image, "target": z}),
        ("critic", "dcgan-critic", {"domain": image}),
    ]:
        REGISTRY.build(kind, name, "test", {}, **context)
    with pytest.raises(RecipeError, match="norm"):
        REGISTRY.build("critic", "dcgan-critic", "test", {"norm": "group"}, domain=image)
    with pytest.raises(RecipeError, match="32, 64, 128"):
        REGISTRY.build("critic", "aegan-image-critic", "critics.Dx", {}, domain=Images(48))
