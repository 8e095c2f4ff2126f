"""Why the GAN baseline's critic stops learning: what `recipes/gan_anime_small.toml`'s Dx says
and how its layers behave over training, and whether it can still learn at the end.

Each seed trains the recipe (or `--recipe`, say the AEGAN preset) through `cyclegen run` (one thread, a checkpoint every `--every`
steps). Every checkpoint is then read back and measured on 256 held-out faces and 256 samples
of G, in eval mode:

- `d_real`, `d_fake`: the mean (and spread) of sigmoid(Dx) on each;
- `sample_pixel_std`: the per-pixel spread of G's samples (real faces: 0.46);
- `common_to_varying`, per critic conv layer: the mean per-pixel norm of the part of its output
  that is the same for every input, over the mean norm of the part that varies. The per-pixel
  LayerNorm after each conv divides by the whole norm, so when this share is large the input's
  signal is divided away;
- `dead`: per LeakyReLU, the share of units negative for every one of the 512 inputs;
- `grad`: per conv layer, the norm of the critic loss's gradient on its kernel (one real and one
  fake batch of 16, training mode, as an update sees them);
- `train_spread`, `warned_at`: the critic's score spread in logits that training logged for the
  window ending at that step, and the steps at which training warned that it had gone flat.

At the last checkpoint, G is frozen and the critic trained alone for `--alone` updates on
single-class batches with the recipe's optimiser settings, once from its trained weights and
once from a fresh initialisation: can it still tell the samples from the data?

    python benchmarks/critic_health.py --data ../shared/data/anime-faces-64.zip --seeds 0 1 2
    python benchmarks/critic_health.py --data ... --seeds 0 --set schedule.mapper_steps=4
    python benchmarks/critic_health.py --data ... --export faces32.npz   # the faces for keras_gan_critic.py
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from cyclegen.checkpoint import checkpoint_files
from cyclegen.experiment import open_trained
from cyclegen.plugins import load_plugins

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "gan_anime_small.toml"
PROBE = 256


def cyclegen_command() -> list[str]:
    beside = Path(sys.executable).with_name("cyclegen")
    return [str(beside)] if beside.is_file() else [sys.executable, "-m", "cyclegen"]


def train(recipe: Path, seed: int, data: Path, steps: int, every: int, overrides: list[str], out: Path) -> Path:
    sets = [
        f"seed={seed}",
        f"domains.x.source={data}",
        f"train.steps={steps}",
        f"train.checkpoint_every={every}",
        f"train.keep_checkpoints={steps // every + 1}",
        f"train.sample_every={steps}",
        "train.threads=1",
        "train.device=cpu",
        "eval.samples=100",
        *overrides,
    ]
    run_dir = out / f"seed-{seed}"
    command = [*cyclegen_command(), "run", str(recipe), "--out", str(run_dir)]
    for item in sets:
        command += ["--set", item]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return run_dir


def probe_batches(exp, seed: int) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(10_000 + seed)
    real = exp.graph.domains["x"].batch(PROBE, generator, "test")
    z = exp.graph.domains["z"].batch(PROBE, generator, "test")
    with torch.no_grad():
        return real, exp.graph.mappers["G"].eval()(z)


def layer_outputs(critic: nn.Module, x: Tensor) -> list[tuple[str, Tensor]]:
    """(kind, output) of every conv and LeakyReLU of the critic's trunk."""
    outputs = []
    for layer in critic.trunk:
        x = layer(x)
        kind = type(layer).__name__
        if kind in ("SameConv2d", "LeakyReLU"):
            outputs.append((kind, x))
    return outputs


def common_to_varying(out: Tensor) -> float:
    common = out.mean(0, keepdim=True)
    return float(common.norm(dim=1).mean() / (out - common).norm(dim=1).mean())


def gradient_norms(exp, critic: nn.Module, real: Tensor, fake: Tensor) -> list[float]:
    loss_fn = exp.graph.adversarial
    critic = copy.deepcopy(critic).train()
    loss = loss_fn.critic_real(critic(real[:16])) + loss_fn.critic_fake(critic(fake[:16]))
    loss.backward()
    return [float(layer.weight.grad.norm()) for layer in critic.trunk if type(layer).__name__ == "SameConv2d"]


def measure(run_dir: Path, checkpoint: Path, seed: int) -> dict:
    exp = open_trained(run_dir, checkpoint)
    critic = exp.graph.critics["Dx"].eval()
    real, fake = probe_batches(exp, seed)
    with torch.no_grad():
        scores = torch.sigmoid(critic(torch.cat([real, fake])))
        layers = layer_outputs(critic, torch.cat([real, fake]))
    return {
        "impl": "cyclegen",
        "seed": seed,
        "step": exp.checkpoint[1],
        "d_real": float(scores[:PROBE].mean()),
        "d_real_std": float(scores[:PROBE].std()),
        "d_fake": float(scores[PROBE:].mean()),
        "d_fake_std": float(scores[PROBE:].std()),
        "sample_pixel_std": float(fake.std(0).mean()),
        "common_to_varying": [common_to_varying(out) for kind, out in layers if kind == "SameConv2d"],
        "dead": [float((out < 0).all(0).float().mean()) for kind, out in layers if kind == "LeakyReLU"],
        "grad": gradient_norms(exp, critic, real, fake),
    }


def train_alone(exp, critic: nn.Module, updates: int, seed: int) -> tuple[float, float]:
    """Train `critic` against the frozen G as the recipe's critic group would; D on held-out data and fresh samples."""
    spec = exp.recipe.optim["image_critic"]
    optimiser = torch.optim.Adam(critic.parameters(), lr=spec.lr, betas=tuple(spec.betas), eps=spec.eps)
    loss_fn, domains, G = exp.graph.adversarial, exp.graph.domains, exp.graph.mappers["G"].eval()
    generator = torch.Generator().manual_seed(20_000 + seed)
    critic.train()
    for _ in range(updates):
        real = domains["x"].batch(16, generator, "train")
        with torch.no_grad():
            fake = G(domains["z"].batch(16, generator, "train"))
        for loss in (lambda: loss_fn.critic_real(critic(real)), lambda: loss_fn.critic_fake(critic(fake))):
            optimiser.zero_grad()
            loss().backward()
            for p in critic.parameters():  # Keras clipnorm, as the recipe's clip.per_tensor = 1
                torch.nn.utils.clip_grad_norm_([p], 1.0)
            optimiser.step()
    real, fake = probe_batches(exp, seed)
    with torch.no_grad():
        scores = torch.sigmoid(critic.eval()(torch.cat([real, fake])))
    return float(scores[:PROBE].mean()), float(scores[PROBE:].mean())


def alone(run_dir: Path, checkpoint: Path, seed: int, updates: int) -> dict:
    exp = open_trained(run_dir, checkpoint)
    trained = copy.deepcopy(exp.graph.critics["Dx"])
    fresh = load_plugins().registry.build(
        "critic", "aegan-image-critic", "Dx", exp.recipe.critics["Dx"].options, domain=exp.graph.domains["x"]
    )
    return {
        "seed": seed,
        "updates": updates,
        "trained critic": train_alone(exp, trained, updates, seed),
        "fresh critic": train_alone(exp, fresh, updates, seed),
    }


def export(data: Path, out: Path) -> None:
    domain = load_plugins().registry.build("domain", "images", "x", {"source": str(data), "size": 32}, name="x")
    channels_last = domain.pixels.permute(0, 2, 3, 1)
    np.savez(out, train=channels_last[domain.splits["train"]].numpy(), test=channels_last[domain.splits["test"]].numpy())
    print(f"wrote {out}: {len(domain.splits['train'])} training and {len(domain.splits['test'])} held-out faces, 32x32")


def seed_report(args: argparse.Namespace, seed: int, out: Path) -> list[dict]:
    run_dir = train(args.recipe, seed, args.data, args.steps, args.every, args.set, out)
    files = checkpoint_files(run_dir / "checkpoints")
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    spread = {line["step"]: line["critic spread"]["Dx"] for line in logged}
    warned = [line["step"] for line in logged if any("Dx's scores hardly vary" in w for w in line.get("warnings", []))]
    lines = [{**measure(run_dir, path, seed), "warned_at": warned} for path in files]
    for line in lines:
        line["train_spread"] = spread.get(line["step"])
    lines.append({"alone": alone(run_dir, files[-1], seed, args.alone)})
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the anime faces (folder or .zip)")
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="any recipe with G: z -> x and an image critic Dx")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--alone", type=int, default=300, help="critic updates against the frozen G at the end")
    parser.add_argument("--set", action="append", default=[], help="a recipe override for every run (repeatable)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--export", type=Path, help="only write the 32x32 faces for keras_gan_critic.py")
    args = parser.parse_args()
    if args.export:
        export(args.data, args.export)
        return
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder, ThreadPoolExecutor(args.jobs) as pool:
        reports = list(pool.map(lambda seed: seed_report(args, seed, Path(folder)), args.seeds))
        shutil.rmtree(folder, ignore_errors=True)
    for lines in reports:
        for line in lines:
            print(json.dumps(line))
    last = [lines[-2] for lines in reports]
    print(f"\nat step {last[0]['step']}, {len(last)} seeds, median (range):")
    for key in ("d_real", "d_fake", "d_real_std", "d_fake_std", "sample_pixel_std"):
        values = [line[key] for line in last]
        print(f"  {key}: {statistics.median(values):.3f} ({min(values):.3f} to {max(values):.3f})")


if __name__ == "__main__":
    main()
