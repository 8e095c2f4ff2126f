"""Training precision (bf16/fp16 autocast, fp16 loss scaling), channels-last layout and compile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch._dynamo.utils
from torch import nn
from typer.testing import CliRunner

from cyclegen.checkpoint import flatten, read_checkpoint
from cyclegen.cli import app
from cyclegen.errors import RecipeError
from cyclegen.experiment import check_precision, open_recipe
from cyclegen.trainer import Trainer
from tests.conftest import aegan_data, with_ema, write_recipe
from tests.test_images import half_and_half
from tests.test_run import train

CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def trainer_for(tmp_path: Path, data: dict[str, Any], name: str = "recipe.toml") -> Trainer:
    exp = open_recipe(write_recipe(tmp_path, data, name))
    return Trainer(exp.graph, exp.recipe, exp.device)


def gan_data(**train: Any) -> dict[str, Any]:
    """The tiny AEGAN cut down to a GAN (one generator, one critic) with an R1 penalty."""
    data = with_ema(aegan_data(**train), "G", half_life=32, warmup=0)
    del data["mappers"]["E"], data["critics"]["Dz"]
    data["terms"] = [{"critic": "Dx", "path": "z -> G"}]
    data["optim"] = {}
    data["adversarial"]["penalty"] = {"type": "r1", "weight": 1.0}
    return data


def conv_gan_data(root: Path, **train: Any) -> dict[str, Any]:
    """A GAN of tiny DCGAN conv nets on 32x32 images, where memory layout matters."""
    faces = root / "faces"
    faces.mkdir(exist_ok=True)
    for i in range(12):
        half_and_half(12 + i % 3, 12).rotate(30 * i).save(faces / f"{i:02d}.png")
    return {
        "name": "tiny-conv-gan",
        "seed": 1,
        "train": {"steps": 3, "batch_size": 4, "device": "cpu", **train},
        "domains": {
            "x": {"type": "images", "source": str(faces), "size": 32, "test_fraction": 0.25, "cache": "off"},
            "z": {"type": "gaussian", "dim": 4},
        },
        "mappers": {"G": {"type": "dcgan-generator", "from": "z", "to": "x", "base": 2}},
        "critics": {"Dx": {"type": "dcgan-critic", "domain": "x", "base": 2}},
        "terms": [{"critic": "Dx", "path": "z -> G"}],
        "ema": {"mappers": ["G"], "half_life": 8, "warmup": 0},  # G has batch norm: buffers are copied
    }


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Every network's weights, and every `[ema]` average's as `ema.<mapper>.<key>`."""
    networks = list(trainer.graph.networks.items())
    if trainer.graph.averages is not None:
        networks += [(f"ema.{name}", trainer.graph.averages[name]) for name in trainer.graph.averages.names()]
    return {f"{name}.{key}": value.clone() for name, net in networks for key, value in net.state_dict().items()}


def record_output_dtypes(trainer: Trainer, kind: type[nn.Module]) -> set[torch.dtype]:
    """Every dtype the `kind` layers of the trainer's networks produce from now on."""
    seen: set[torch.dtype] = set()
    for net in trainer.graph.networks.values():
        for module in net.modules():
            if isinstance(module, kind):
                module.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
    return seen


# -- bf16 ------------------------------------------------------------------------------------


def test_bf16_runs_the_networks_in_bf16_and_the_losses_in_float32(tmp_path: Path) -> None:
    trainer = trainer_for(tmp_path, with_ema(aegan_data(precision="bf16")))
    seen = record_output_dtypes(trainer, nn.Linear)
    losses = torch.stack([trainer.step() for _ in range(3)])
    assert seen == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in trainer.graph.averages["G"].parameters())  # averages stay float32
    assert losses.dtype == torch.float32 and torch.isfinite(losses).all()
    assert all(fake.dtype == torch.float32 for fake in trainer.make_fakes().values())
    fp32 = trainer_for(tmp_path, aegan_data(), "fp32.toml")
    reference = torch.stack([fp32.step() for _ in range(3)])
    torch.testing.assert_close(losses, reference, rtol=0.05, atol=0.05)


# -- fp16 ------------------------------------------------------------------------------------


def test_fp16_trains_with_scalers_that_resume_bit_exactly(tmp_path: Path) -> None:
    data = with_ema(aegan_data(steps=16, checkpoint_every=0, sample_every=4, precision="fp16"))
    recipe = write_recipe(tmp_path, data)
    straight = train(recipe, tmp_path / "straight")
    train(recipe, tmp_path / "halves", ["train.steps=8"])
    resumed = train(recipe, tmp_path / "halves")
    a, b = weights(straight.trainer), weights(resumed.trainer)
    assert all(torch.equal(a[k], b[k]) for k in a)
    for sa, sb in zip(straight.trainer.groups, resumed.trainer.groups):
        for pa, pb in zip(sa.params, sb.params):
            state_a, state_b = sa.optimizer.state[pa], sb.optimizer.state[pb]
            assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    scalers = {name: s.state_dict() for name, s in straight.trainer.runtime.scalers.items()}
    assert set(scalers) == {"mappers", "critic/image_critic", "critic/latent_critic"}
    assert scalers == {name: s.state_dict() for name, s in resumed.trainer.runtime.scalers.items()}
    # Overflowing fp16 gradients were skipped (the scale backed off) without failing the run.
    assert min(state["scale"] for state in scalers.values()) < 2.0**16
    saved = read_checkpoint(tmp_path / "straight" / "checkpoints" / "step-000000016.safetensors")
    assert saved.state["scalers"] == scalers
    lines = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(list(line["losses"].values()))).all() for line in lines)


def test_precision_may_change_between_runs_of_one_directory(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, aegan_data(steps=4, checkpoint_every=0, sample_every=0))
    train(recipe, tmp_path / "run")
    resumed = train(recipe, tmp_path / "run", ["train.steps=6", "train.precision=fp16"])
    assert resumed.trainer.step_count == 6
    assert all(s.get_scale() <= 2.0**16 for s in resumed.trainer.runtime.scalers.values())
    back = train(recipe, tmp_path / "run", ["train.steps=8"])  # fp32 ignores the saved scalers
    assert back.trainer.step_count == 8 and not back.trainer.runtime.scalers


# -- channels_last ---------------------------------------------------------------------------


def test_channels_last_converts_conv_weights_and_image_batches_only(tmp_path: Path) -> None:
    default = trainer_for(tmp_path, conv_gan_data(tmp_path), "default.toml")
    nhwc = trainer_for(tmp_path, conv_gan_data(tmp_path, channels_last=True), "nhwc.toml")
    init = weights(nhwc)
    convs = [m for net in nhwc.graph.networks.values() for m in net.modules() if isinstance(m, CONVS)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    layouts: list[bool] = []
    first_critic_conv = next(m for m in nhwc.graph.critics["Dx"].modules() if isinstance(m, nn.Conv2d))
    first_critic_conv.register_forward_pre_hook(
        lambda _m, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    expected = torch.stack([default.step() for _ in range(3)])
    losses = torch.stack([nhwc.step() for _ in range(3)])
    assert layouts and all(layouts)
    torch.testing.assert_close(losses, expected, rtol=1e-4, atol=1e-5)
    trained, reference = weights(nhwc), weights(default)
    assert any(not torch.equal(value, init[key]) for key, value in trained.items())  # training moved them
    # Updates are ~6e-4; biases right before a batch norm get ~zero gradients, which Adam
    # rescales, so they differ by up to ~2e-6 between layouts.
    torch.testing.assert_close(trained, reference, rtol=1e-4, atol=1e-5)
    assert nhwc.draw("x").is_contiguous(memory_format=torch.channels_last)
    assert nhwc.draw("z").dim() == 2  # other tensors are left alone
    state = nhwc.state_dict()
    tensors, _ = flatten(state)
    assert all(t.is_contiguous() for t in tensors.values())
    default.graph.weight_parts().load_state_dict(state)  # the weights and their averages
    assert all(torch.equal(value, trained[key]) for key, value in weights(default).items())


# -- compile ---------------------------------------------------------------------------------


def test_compiled_run_follows_the_eager_one_with_a_double_backward_penalty(tmp_path: Path) -> None:
    """Inductor on the CPU, with R1 (create_graph=True, which compiled code cannot do)."""
    eager = trainer_for(tmp_path, gan_data(), "eager.toml")
    expected = torch.stack([eager.step() for _ in range(4)])
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    compiled = trainer_for(tmp_path, gan_data(compile=True), "compiled.toml")
    losses = torch.stack([compiled.step() for _ in range(4)])
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs  # really compiled
    torch.testing.assert_close(losses, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(weights(compiled), weights(eager), rtol=1e-4, atol=1e-5)
    for name, net in compiled.graph.networks.items():
        assert list(net.state_dict()) == list(eager.graph.networks[name].state_dict())
    compiled_state, _ = flatten(compiled.state_dict())
    eager_state, _ = flatten(eager.state_dict())
    assert compiled_state.keys() == eager_state.keys()


# -- validation ------------------------------------------------------------------------------


def test_unknown_precision_lists_the_choices(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="train.precision: Input should be 'fp32', 'bf16' or 'fp16'"):
        open_recipe(write_recipe(tmp_path, aegan_data(precision="fp8")))


def test_half_precision_is_accepted_on_the_cpu() -> None:
    for precision in ("fp32", "bf16", "fp16"):
        check_precision(precision, torch.device("cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unsupported_precision_is_refused_before_training() -> None:
    message = r"train.precision: 'bf16' is not supported on the cuda device .*use \"fp32\" or \"fp16\""
    with pytest.raises(RecipeError, match=message):
        check_precision("bf16", torch.device("cuda"))


def test_compile_where_torch_cannot_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("torch.compile is not supported on Python 3.15+")

    monkeypatch.setattr(torch, "compile", refuse)
    with pytest.raises(RecipeError, match=r"train.compile: torch.compile is not supported .*set train.compile = false"):
        open_recipe(write_recipe(tmp_path, aegan_data(compile=True)))


def test_validate_prints_precision_layout_and_compile(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, aegan_data())
    args = ["validate", str(recipe), "--set", "train.precision=bf16", "--set", "train.channels_last=true"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "precision bf16, channels_last on, compile off" in result.output
