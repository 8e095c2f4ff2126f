"""Packing critics (`[critics.<name>] pack`): what they judge together, what they refuse, how they train."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from cyclegen.distributed import Ranks
from cyclegen.errors import CycleGenError, RecipeError
from cyclegen.experiment import open_recipe
from cyclegen.packing import PackedCritic, PackedDomain, pack_samples
from cyclegen.plugins import load_plugins
from cyclegen.trainer import Trainer
from tests.conftest import aegan_data, write_recipe
from tests.test_networks import Images
from tests.test_run import all_weights, train


def packed_aegan(pack: int = 4, **train: object) -> dict:
    data = aegan_data(**train)
    data["critics"]["Dx"]["pack"] = pack
    return data


def test_pack_samples_puts_consecutive_samples_into_one_input() -> None:
    vectors = torch.arange(12.0).reshape(6, 2)
    assert torch.equal(pack_samples(vectors, 3), torch.tensor([[0.0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]))
    images = torch.randn(4, 3, 5, 5)
    packed = pack_samples(images, 2)
    assert packed.shape == (2, 6, 5, 5)
    assert torch.equal(packed[1, 3:], images[3])  # channels of the second sample of the second pack


def test_pack_samples_refuses_a_batch_it_does_not_divide() -> None:
    with pytest.raises(ValueError, match="packs 4 samples got a batch of 6"):
        pack_samples(torch.zeros(6, 2), 4)


def test_a_packing_critic_gives_one_score_per_pack_of_its_domain(tmp_path: Path) -> None:
    exp = open_recipe(write_recipe(tmp_path, packed_aegan(pack=4)))
    critic = exp.graph.critics["Dx"]
    assert isinstance(critic, PackedCritic)
    assert critic.critic.net[0].in_features == 8  # four 2-D grid points per input
    samples = torch.randn(32, 2)
    scores = critic(samples)
    assert scores.shape == (8,)
    assert torch.allclose(scores[1], critic.critic(samples[4:8].reshape(1, 8))[0], atol=1e-6)
    swapped = samples.clone()
    swapped[[4, 8]] = samples[[8, 4]]  # one sample trades packs: both packs' scores change, no other
    changed = (critic(swapped) != scores).nonzero().flatten().tolist()
    assert changed == [1, 2]
    assert not isinstance(exp.graph.critics["Dz"], PackedCritic)  # pack is per critic; Dz judges alone


def test_a_pack_that_does_not_divide_the_batch_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"critics.Dx.pack = 3 must divide train.batch_size \(32\).*multiple"):
        open_recipe(write_recipe(tmp_path, packed_aegan(pack=3)))


def test_each_process_share_of_the_batch_must_be_packable(tmp_path: Path) -> None:
    exp = open_recipe(write_recipe(tmp_path, packed_aegan(pack=32)))  # 32 divides the batch of 32
    with pytest.raises(CycleGenError, match=r"share of train.batch_size \(32 over 2 processes: 16\).*multiple of 64"):
        Trainer(exp.graph, exp.recipe, torch.device("cpu"), Ranks(rank=0, world_size=2, local_rank=0))


def test_a_packing_critic_trains_and_trains_the_mappers(tmp_path: Path) -> None:
    exp = open_recipe(write_recipe(tmp_path, packed_aegan(pack=2)))
    trainer = Trainer(exp.graph, exp.recipe, torch.device("cpu"))
    critic_before = [p.detach().clone() for p in trainer.graph.critics["Dx"].parameters()]
    mapper_before = [p.detach().clone() for p in trainer.graph.mappers["G"].parameters()]
    losses = trainer.step()
    assert torch.isfinite(losses).all()
    assert all(not torch.equal(a, b) for a, b in zip(critic_before, trainer.graph.critics["Dx"].parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(mapper_before, trainer.graph.mappers["G"].parameters()))


RECORDING_PLUGIN = '''
from cyclegen import Penalty, hookimpl
from cyclegen_losses import Hinge

SHAPES = []


class Recording(Penalty):
    """A zero penalty that records the shapes of what it was given."""

    def __call__(self, critic, real, fake):
        SHAPES.append((tuple(real.shape), tuple(fake.shape), tuple(critic(real).shape)))
        return critic(real).sum() * 0.0


class RecordingHinge(Hinge):
    def penalties(self):
        return [Recording()]


@hookimpl
def cyclegen_register(registry):
    registry.adversarial_loss("recording", RecordingHinge)
'''


def test_penalties_see_the_packed_inputs_a_packing_critic_judges(tmp_path: Path) -> None:
    (tmp_path / "recording.py").write_text(RECORDING_PLUGIN)
    data = packed_aegan(pack=4)
    data["plugins"] = ["recording.py"]
    data["adversarial"] = {"loss": "recording"}
    exp = open_recipe(write_recipe(tmp_path, data))
    trainer = Trainer(exp.graph, exp.recipe, torch.device("cpu"))
    shapes = sys.modules[type(trainer.graph.adversarial).__module__].SHAPES
    shapes.clear()
    trainer.critic_phase()
    # Dx packs four grid points per input; Dz judges 3-D latents one at a time. Two fake paths each.
    assert shapes == [((8, 8), (8, 8), (8,))] * 2 + [((32, 3), (32, 3), (32,))] * 2


def test_a_run_with_a_packing_critic_resumes_exactly(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, packed_aegan(pack=2, steps=12, checkpoint_every=0))
    straight = train(recipe, tmp_path / "straight")
    train(recipe, tmp_path / "halves", ["train.steps=6"])
    resumed = train(recipe, tmp_path / "halves")
    assert resumed.trainer.step_count == 12
    a, b = all_weights(straight), all_weights(resumed)
    assert any(key.startswith("Dx.critic.") for key in a)  # the packed critic's weights are checkpointed
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_an_image_critic_packs_pictures_along_their_channels() -> None:
    packed = PackedDomain(Images(size=32), 2)
    assert packed.shape == (6, 32, 32)
    assert packed.batch(5, torch.Generator().manual_seed(0)).shape == (5, 6, 32, 32)
    critic = PackedCritic(load_plugins().registry.build("critic", "dcgan-critic", "test", {"base": 8}, domain=packed), 2)
    assert critic.critic.trunk[0].in_channels == 6
    assert critic(torch.rand(8, 3, 32, 32)).shape == (4,)
