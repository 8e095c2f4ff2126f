"""The CycleGAN plugin's networks, pinned to the official code (junyanz/pytorch-CycleGAN-and-pix2pix).

Full-width networks are only built (to count parameters), never run; forward passes use
tiny widths and images so the file stays fast on a CPU.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

from cyclegen import Domain
from cyclegen.errors import RecipeError
from cyclegen.plugins import load_plugins

REGISTRY = load_plugins().registry


class Images(Domain):
    """A stand-in image domain: only its shape matters to the networks."""

    def __init__(self, size: int = 32, channels: int = 3, height: int | None = None) -> None:
        super().__init__("x", (channels, height or size, size))

    def batch(self, n: int, generator: torch.Generator, split: str = "train") -> Tensor:
        return torch.randn(n, *self.shape, generator=generator)


def generator(source: Domain, target: Domain | None = None, **options: Any) -> nn.Module:
    return REGISTRY.build("mapper", "resnet-generator", "mappers.F", options, source=source, target=target or source)


def critic(domain: Domain, **options: Any) -> nn.Module:
    return REGISTRY.build("critic", "patchgan-critic", "critics.D", options, domain=domain)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def convs(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


TINY = {"width": 4, "blocks": 2}


# --- fidelity to the official networks ---------------------------------------------------


@pytest.mark.parametrize("blocks, expected", [(9, 11_378_179), (6, 7_837_699)])
def test_generator_parameter_count_matches_the_official_code(blocks: int, expected: int) -> None:
    assert count(generator(Images(64), blocks=blocks)) == expected


def test_critic_parameter_count_matches_the_official_code() -> None:
    assert count(critic(Images(64))) == 2_764_737


def test_plugin_registers_both_networks_under_its_name() -> None:
    assert REGISTRY.get("mapper", "resnet-generator", "x").plugin == "cyclegan"
    assert REGISTRY.get("critic", "patchgan-critic", "x").plugin == "cyclegan"


def test_generator_pads_by_reflection() -> None:
    net = generator(Images(), **TINY)
    leaves = [m for m in net.modules() if not list(m.children())]
    assert isinstance(leaves[0], nn.ReflectionPad2d)
    pads = [m.padding for m in leaves if isinstance(m, nn.ReflectionPad2d)]
    assert pads == [(3, 3, 3, 3)] + [(1, 1, 1, 1)] * 4 + [(3, 3, 3, 3)]
    zero_padded = [c for c in convs(net) if c.padding != (0, 0)]
    assert zero_padded and all(c.stride == (2, 2) for c in zero_padded)  # only strided convs pad with zeros


def test_residual_blocks_add_their_input() -> None:
    net = generator(Images(), **TINY)
    block = next(m for m in net.modules() if type(m).__name__ == "ResidualBlock")
    last = convs(block)[-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    x = torch.randn(2, 16, 8, 8)
    assert torch.allclose(block(x), x)


def test_dropout_is_one_half_in_every_block_only_when_asked() -> None:
    assert not [m for m in generator(Images(), **TINY).modules() if isinstance(m, nn.Dropout)]
    dropouts = [m for m in generator(Images(), **TINY, dropout=True).modules() if isinstance(m, nn.Dropout)]
    assert [d.p for d in dropouts] == [0.5, 0.5]


def test_critic_scores_70_pixel_patches() -> None:
    """The receptive field of one score, measured by its gradient (no norm to couple pixels)."""
    net = critic(Images(128), width=2, norm="none")
    for conv in convs(net):  # positive weights: no gradient cancels to an exact zero
        nn.init.uniform_(conv.weight, 0.1, 0.2)
    x = torch.randn(1, 3, 128, 128, requires_grad=True)
    scores = net(x)
    scores[0, 0, 5, 5].backward()
    rows, columns = x.grad[0].abs().sum(0).nonzero().unbind(1)
    assert (rows.max() - rows.min() + 1, columns.max() - columns.min() + 1) == (70, 70)


# --- options and shapes ------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("source_channels, target_channels", [(1, 3), (3, 1)])
def test_generator_keeps_the_size_and_maps_channels(size: int, source_channels: int, target_channels: int) -> None:
    net = generator(Images(size, source_channels), Images(size, target_channels), **TINY)
    assert net(torch.randn(2, source_channels, size, size)).shape == (2, target_channels, size, size)


def test_generator_output_stays_in_the_image_range() -> None:
    net = generator(Images(), **TINY)
    nn.init.normal_(convs(net)[-1].weight, 0.0, 10.0)  # drive the last conv far into saturation
    out = net(torch.randn(2, 3, 32, 32))
    assert out.abs().max() <= 1.0
    assert out.abs().max() > 0.99


@pytest.mark.parametrize("size, layers, side", [(32, 3, 2), (64, 3, 6), (32, 2, 6), (24, 3, 1)])
def test_critic_gives_a_map_of_scores(size: int, layers: int, side: int) -> None:
    net = critic(Images(size), width=4, layers=layers)
    assert net(torch.randn(2, 3, size, size)).shape == (2, 1, side, side)


def test_instance_norm_keeps_no_statistics_and_convs_keep_their_bias() -> None:
    net = generator(Images(), **TINY)
    norms = [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(not n.affine and not n.track_running_stats for n in norms)
    assert all(c.bias is not None for c in convs(net))


def test_batch_norm_replaces_the_bias_of_the_convs_it_follows() -> None:
    *normed, last = convs(generator(Images(), **TINY, norm="batch"))
    assert normed and all(c.bias is None for c in normed) and last.bias is not None
    first, *normed, last = convs(critic(Images(), width=4, norm="batch"))  # the first conv has no norm
    assert normed and all(c.bias is None for c in normed)
    assert first.bias is not None and last.bias is not None


def test_no_norm_keeps_every_bias() -> None:
    for net in (generator(Images(), **TINY, norm="none"), critic(Images(), width=4, norm="none")):
        assert not [m for m in net.modules() if isinstance(m, (nn.InstanceNorm2d, nn.BatchNorm2d))]
        assert all(c.bias is not None for c in convs(net))


def test_weights_start_as_in_the_official_code() -> None:
    net = generator(Images(64), blocks=6, norm="batch")
    kernels = torch.cat([c.weight.flatten() for c in convs(net)])
    assert kernels.mean().abs() < 1e-3
    assert kernels.std().item() == pytest.approx(0.02, rel=0.01)
    assert all(not c.bias.any() for c in convs(net) if c.bias is not None)
    scales = torch.cat([m.weight for m in net.modules() if isinstance(m, nn.BatchNorm2d)])
    assert scales.mean().item() == pytest.approx(1.0, abs=0.01)
    assert scales.std().item() == pytest.approx(0.02, rel=0.1)


# --- errors a recipe can make ------------------------------------------------------------


def test_generator_rejects_a_size_not_divisible_by_four() -> None:
    with pytest.raises(RecipeError, match=r"mappers\.F.*30x30.*multiples of 4"):
        generator(Images(30), **TINY)


def test_generator_rejects_domains_of_different_sizes() -> None:
    with pytest.raises(RecipeError, match="same size"):
        generator(Images(32), Images(64), **TINY)


def test_networks_reject_a_domain_that_is_not_images() -> None:
    class Flat(Images):
        def __init__(self) -> None:
            Domain.__init__(self, "z", (16,))

    with pytest.raises(RecipeError, match=r"\(C, H, W\)"):
        generator(Flat(), Images(), **TINY)
    with pytest.raises(RecipeError, match=r"\(C, H, W\)"):
        critic(Flat())


def test_critic_rejects_images_too_small_for_its_layers() -> None:
    with pytest.raises(RecipeError, match=r"critics\.D.*16x16 images are too small.*layers = 2 or fewer"):
        critic(Images(16), width=4, layers=3)
    assert critic(Images(16), width=4, layers=2)(torch.randn(1, 3, 16, 16)).shape == (1, 1, 2, 2)


@pytest.mark.parametrize("options", [{"blocks": 0}, {"width": 0}, {"norm": "group"}])
def test_generator_rejects_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(RecipeError, match=next(iter(options))):
        generator(Images(), **options)
