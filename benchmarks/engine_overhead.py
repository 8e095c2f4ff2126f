"""Engine overhead: the engine against the same training written as a plain PyTorch loop.

For the AEGAN on the 2-D grid (recipes/aegan_grid.toml with bce and constant rates: 128x3 MLPs
at batch 128, where Python overhead dominates) and the small anime preset
(recipes/aegan_anime_small.toml), this times three ways of doing the same training step:

* hand-written: the AEGAN step as a researcher would write it in plain PyTorch, inside this
  script (`HandWrittenAEGAN`), over deep copies of the recipe's networks, with the recipe's
  optimisers, loss, terms, weights and schedule;
* `Trainer.step()`: the engine's step alone;
* the `Run` loop: `Run.train()`, which adds the per-step bookkeeping around `Trainer.step()`
  (pending losses, log flushes every `log_every`, checkpoints and sample pictures at the
  recipe's intervals, the progress reporter), in a temporary run directory.

Before timing, the hand-written loop and `Trainer.step()` run from the same weights, the same
random streams and the same global seed; their losses must agree exactly (bit for bit) for
the first steps, and so must every weight afterwards: proof that both do the same work.

Timing: warm-up steps, then `--blocks` rounds; each round times one block of `--steps` steps of
each way, in an order that rotates every round (so drift and ordering cancel). A block's
figure is its mean seconds per step; the table gives the median over rounds, and each ratio is
the median over rounds of (engine block / hand-written block of the same round) with its
interquartile range. Every step is also timed alone: the median step of each way over all
blocks gives the "median step" ratios, which the goal's verdict uses, since thousands of
steps per way make them far steadier than block ratios on a shared machine. "Run, amortised"
is all Run time over all Run steps, so it includes the rare checkpoints and sample pictures
at the rate they happen; the medians hide them.

    python benchmarks/engine_overhead.py                         # both recipes, default sizes
    python benchmarks/engine_overhead.py --recipe toy --steps 300 --blocks 16
    python benchmarks/engine_overhead.py --recipe anime --threads 2 --data ../shared/data/anime-faces-64.zip
    python benchmarks/engine_overhead.py --recipe toy --profile   # + where the engine's overhead goes
    python benchmarks/engine_overhead.py --recipe toy --steps 5 --blocks 2 --warmup 2 --profile-steps 20  # smoke

The issue's goal: the engine costs at most 5% more time per step than the hand-written loop on
the toy recipe and at most 2% on the anime preset. Run it on a quiet machine: other processes
on the cores make the ratios noisy (the interquartile range shows how much).
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import io
import json
import platform
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import torch
import torch.nn.functional as F
from rich.console import Console
from torch import Tensor, nn

import cyclegen.run
from cyclegen.experiment import Experiment, open_recipe
from cyclegen.progress import Reporter
from cyclegen.run import Run
from cyclegen.samples import SampleWriter
from cyclegen.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "anime-faces-64.zip"


@dataclass(frozen=True)
class Preset:
    recipe: str
    threads: int
    steps: int  # per block
    blocks: int
    warmup: int
    check_steps: int
    goal: float  # the bound on engine / hand-written
    pinned: tuple[str, ...] = ()  # overrides that make the recipe the loop the hand-written script implements


PRESETS = {
    # Short blocks, many rounds: the ways alternate every few hundred milliseconds, so bursts of
    # other load on the machine fall on all of them alike.
    # The hand-written loop implements bce at constant rates, as the grid recipe trained until it
    # moved to the hinge loss and decaying critics; the engine's overhead does not depend on either.
    "toy": Preset("aegan_grid.toml", threads=1, steps=50, blocks=60, warmup=100, check_steps=5, goal=1.05,
                  pinned=('adversarial.loss="bce"', 'optim.image_critic.lr_schedule.type="constant"',
                          'optim.latent_critic.lr_schedule.type="constant"')),
    "anime": Preset("aegan_anime_small.toml", threads=2, steps=1, blocks=80, warmup=2, check_steps=2, goal=1.02),
}

#: The AEGAN's terms, as both recipes write them: (critic, path, reconstruction loss).
AEGAN_TERMS = [
    ("Dx", "z -> G", None),
    ("Dx", "x -> E -> G", None),
    ("Dz", "x -> E", None),
    ("Dz", "z -> G -> E", None),
    (None, "x -> E -> G", "l1"),
    (None, "z -> G -> E", "l2"),
]


# -- the recipe's settings, as plain numbers --------------------------------------------------


@dataclass(frozen=True)
class AEGANSettings:
    """Everything the hand-written loop needs from a recipe; checked to be what it implements."""

    seed: int
    batch_size: int
    critic_rounds: int
    mapper_updates: int
    single_class: bool  # critic batches: the reference's real, fake, real, fake (else joint)
    fakes_in_eval_mode: bool
    real_target: float
    fake_target: float
    weight_x_cycle: float
    weight_z_cycle: float
    adam: dict[str, dict[str, Any]]  # "GE", "Dx", "Dz" -> Adam keyword arguments
    clip: dict[str, float | None]  # per-tensor gradient norm bound (Keras clipnorm), or None


def aegan_settings(exp: Experiment) -> AEGANSettings:
    recipe = exp.recipe
    problems = []
    terms = [(t.critic, " -> ".join(n.strip() for n in t.path.split("->")), t.loss) for t in recipe.terms]
    if terms != AEGAN_TERMS:
        problems.append(f"terms {terms} are not the AEGAN's {AEGAN_TERMS}")
    if any(t.weight != 1.0 for t in recipe.terms[:4]):
        problems.append("the hand-written loop adds the adversarial terms unweighted; they have weights != 1")
    adversarial = recipe.adversarial
    options = adversarial.options
    if adversarial.loss != "bce" or adversarial.penalty is not None or set(options) - {"label_smoothing", "one_sided"}:
        problems.append(f"adversarial loss must be plain bce (with label smoothing), got {adversarial}")
    if any(c.history for c in recipe.critics.values()):
        problems.append("critic histories are not implemented by the hand-written loop")
    train = recipe.train
    precision = getattr(train, "precision", "fp32")
    if precision != "fp32" or getattr(train, "compile", False) or getattr(train, "channels_last", False):
        problems.append("the hand-written loop runs eager float32: leave train.precision, compile and "
                        "channels_last at their defaults")
    groups = {frozenset(spec.networks): spec for spec in recipe.optim.values()}
    critic_order = [spec.networks for spec in recipe.optim.values() if set(spec.networks) & {"Dx", "Dz"}]
    if set(groups) != {frozenset({"G", "E"}), frozenset({"Dx"}), frozenset({"Dz"})} or critic_order != [["Dx"], ["Dz"]]:
        problems.append("optim must hold three groups: [G, E], then [Dx], then [Dz]")
    adam: dict[str, dict[str, Any]] = {}
    clip: dict[str, float | None] = {}
    for key, nets in (("GE", {"G", "E"}), ("Dx", {"Dx"}), ("Dz", {"Dz"})):
        spec = groups.get(frozenset(nets))
        if spec is None:
            continue
        if spec.type != "adam" or spec.clip.global_norm is not None or spec.lr_schedule.type != "constant":
            problems.append(
                f"group {sorted(nets)}: the hand-written loop implements Adam, per-tensor clipping, constant lr"
            )
        # fused=True: the same Adam kernel the engine picks on CPU and CUDA (cyclegen.optim.implementation).
        adam[key] = dict(lr=spec.lr, betas=tuple(spec.betas), eps=spec.eps, weight_decay=spec.weight_decay, fused=True)
        clip[key] = spec.clip.per_tensor
    if problems:
        raise SystemExit("this recipe is not the AEGAN the hand-written loop implements:\n  " + "\n  ".join(problems))
    smoothing = float(options.get("label_smoothing", 0.0))
    schedule = recipe.schedule
    return AEGANSettings(
        seed=recipe.seed,
        batch_size=train.batch_size,
        critic_rounds=schedule.critic_steps or 1,  # bce prefers one round
        mapper_updates=schedule.mapper_steps,
        single_class=schedule.critic_batches == "single-class",
        fakes_in_eval_mode=schedule.fakes == "eval",
        real_target=1.0 - smoothing,
        fake_target=0.0 if options.get("one_sided", False) else smoothing,
        weight_x_cycle=recipe.terms[4].weight,
        weight_z_cycle=recipe.terms[5].weight,
        adam=adam,
        clip=clip,
    )


# -- the hand-written loop --------------------------------------------------------------------


def bce(logits: Tensor, target: float) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def clip_each_(params: list[nn.Parameter], max_norm: float) -> None:
    """Keras clipnorm: scale every gradient tensor to L2 norm at most `max_norm`."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch._foreach_norm(grads)
    torch._foreach_mul_(grads, [torch.clamp(max_norm / torch.clamp(n, min=1e-12), max=1.0) for n in norms])


def data_stream(seed: int, name: str) -> torch.Generator:
    """One CPU random stream per data set, seeded as cyclegen seeds a domain's training stream,
    so that this loop and the engine see the same batches."""
    generator = torch.Generator()
    generator.manual_seed(seed * 1_000_003 + zlib.crc32(f"train/{name}".encode()))
    return generator


class HandWrittenAEGAN:
    """The AEGAN training step in plain PyTorch: no engine, no graph, no recipe; the settings
    are plain numbers.

    One step: `critic_rounds` rounds of (fakes without a graph, then Dx, then Dz), then
    `mapper_updates` updates of E and G. Mapper losses are backpropagated into E and G only
    (`backward(inputs=...)`, as the engine does), so the critics get no gradients from them.
    The networks are called in the engine's order, so that their noise layers (the anime
    preset's) draw the same numbers from the global stream. Returns the losses the engine
    logs, detached: each critic's real loss plus its mean fake loss, then each term's loss.
    """

    def __init__(self, G: nn.Module, E: nn.Module, Dx: nn.Module, Dz: nn.Module, x_data, z_prior,
                 s: AEGANSettings, device: torch.device) -> None:
        self.G, self.E, self.Dx, self.Dz = G, E, Dx, Dz
        self.x_data, self.z_prior, self.s, self.device = x_data, z_prior, s, device
        self.ge_params = [*G.parameters(), *E.parameters()]
        self.dx_params = list(Dx.parameters())
        self.dz_params = list(Dz.parameters())
        self.opt_ge = torch.optim.Adam(self.ge_params, **s.adam["GE"])
        self.opt_dx = torch.optim.Adam(self.dx_params, **s.adam["Dx"])
        self.opt_dz = torch.optim.Adam(self.dz_params, **s.adam["Dz"])
        self.rng_x = data_stream(s.seed, "x")
        self.rng_z = data_stream(s.seed, "z")

    def real_x(self) -> Tensor:
        return self.x_data.batch(self.s.batch_size, self.rng_x, "train").to(self.device, non_blocking=True)

    def prior_z(self) -> Tensor:
        return self.z_prior.batch(self.s.batch_size, self.rng_z, "train").to(self.device, non_blocking=True)

    def update(self, opt: torch.optim.Optimizer, params: list[nn.Parameter], loss: Tensor,
               clip: float | None, inputs: list[nn.Parameter] | None = None) -> Tensor:
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=inputs)
        if clip is not None:
            clip_each_(params, clip)
        opt.step()
        return loss.detach()

    def train_critic(self, D, opt, params, clip, draw_real, fake1: Tensor, fake2: Tensor) -> Tensor:
        real, fake = self.s.real_target, self.s.fake_target
        if not self.s.single_class:  # one update on a real batch and both fake batches
            loss = 2 * bce(D(draw_real()), real) + bce(D(fake1), fake) + bce(D(fake2), fake)
            return self.update(opt, params, loss, clip) / 2
        # the reference's single-class batches: real, fake 1, real, fake 2; each its own update
        real1, real2 = draw_real(), draw_real()
        r1 = self.update(opt, params, bce(D(real1), real), clip)
        f1 = self.update(opt, params, bce(D(fake1), fake), clip)
        r2 = self.update(opt, params, bce(D(real2), real), clip)
        f2 = self.update(opt, params, bce(D(fake2), fake), clip)
        return (r1 + f1 + r2 + f2) / 2

    def step(self) -> tuple[Tensor, ...]:
        G, E, Dx, Dz, s = self.G, self.E, self.Dx, self.Dz, self.s
        for r in range(s.critic_rounds):
            z, x = self.prior_z(), self.real_x()
            with torch.no_grad():
                if s.fakes_in_eval_mode:
                    G.eval(), E.eval()
                x_hat = G(z)
                z_hat = E(x)
                x_tilde = G(z_hat)
                z_tilde = E(x_hat)
                if s.fakes_in_eval_mode:
                    G.train(), E.train()
            dx = self.train_critic(Dx, self.opt_dx, self.dx_params, s.clip["Dx"], self.real_x, x_hat, x_tilde)
            dz = self.train_critic(Dz, self.opt_dz, self.dz_params, s.clip["Dz"], self.prior_z, z_hat, z_tilde)
            dx_sum, dz_sum = (dx, dz) if r == 0 else (dx_sum + dx, dz_sum + dz)
        if s.critic_rounds > 1:
            dx_sum, dz_sum = dx_sum / s.critic_rounds, dz_sum / s.critic_rounds
        for i in range(s.mapper_updates):
            z, x = self.prior_z(), self.real_x()
            x_hat = G(z)
            z_hat = E(x)
            x_tilde = G(z_hat)
            z_tilde = E(x_hat)
            losses = (
                bce(Dx(x_hat), 1.0),
                bce(Dx(x_tilde), 1.0),
                bce(Dz(z_hat), 1.0),
                bce(Dz(z_tilde), 1.0),
                (x_tilde - x).abs().mean(),
                (z_tilde - z).pow(2).mean(),
            )
            loss = losses[0] + losses[1] + losses[2] + losses[3]
            loss = loss + (losses[4] if s.weight_x_cycle == 1 else s.weight_x_cycle * losses[4])
            loss = loss + (losses[5] if s.weight_z_cycle == 1 else s.weight_z_cycle * losses[5])
            self.update(self.opt_ge, self.ge_params, loss, s.clip["GE"], inputs=self.ge_params)
            sums = [l.detach() for l in losses] if i == 0 else [t + l.detach() for t, l in zip(sums, losses)]
        if s.mapper_updates > 1:
            sums = [t / s.mapper_updates for t in sums]
        return (dx_sum, dz_sum, *sums)


# -- setting up the three ways ------------------------------------------------------------------


def open_experiment(name: str, args: argparse.Namespace, extra: list[str] = ()) -> Experiment:
    overrides = [f"train.device={args.device!r}"]
    if name == "anime":
        overrides.append(f"domains.x.source={str(args.data)!r}")
    preset = PRESETS[name]
    return open_recipe(ROOT / "recipes" / preset.recipe, [*preset.pinned, *overrides, *args.overrides, *extra])


def hand_loop_for(exp: Experiment) -> HandWrittenAEGAN:
    """A hand-written loop over deep copies of `exp`'s networks (taken before any training)."""
    g = exp.graph
    originals = (g.mappers["G"], g.mappers["E"], g.critics["Dx"], g.critics["Dz"])
    nets = [copy.deepcopy(net).to(exp.device) for net in originals]
    return HandWrittenAEGAN(*nets, g.domains["x"], g.domains["z"], aegan_settings(exp), exp.device)


def synchronizer(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


class RunDriver:
    """Drives the real `Run.train()` loop for blocks of steps in a temporary run directory.

    A block ends as Ctrl-C ends a run (the loop's signal flag), so no end-of-training
    samples or evaluation run; it is timed from the loop's progress reporter, created just
    before the loop and updated at the end of every iteration, so the times cover whole loop
    iterations (step, pending losses, log flushes, checkpoints, samples, reporting) and
    nothing before or after the loop.
    """

    def __init__(self, exp: Experiment, directory: Path, sync: Callable[[], None]) -> None:
        self.run = Run(exp, directory, console=Console(file=io.StringIO(), width=200))
        self.run.prepare()
        self.sync = sync
        self.iterations: list[float] = []  # every timed loop iteration, for the report

    def time_steps(self, n: int) -> float:
        run, sync, marks = self.run, self.sync, []

        class TimedReporter(Reporter):
            def __init__(self, *a: Any, **k: Any) -> None:
                super().__init__(*a, **k)
                sync()
                marks.append(time.perf_counter())

            def update(self, step: int, losses: dict[str, float] | None = None) -> None:
                super().update(step, losses)
                if len(marks) == n:
                    run.signal_received = signal.SIGINT  # what Ctrl-C sets: the loop stops after this step
                    sync()
                marks.append(time.perf_counter())

        run.signal_received = run.stop_signal = None
        with mock.patch.object(cyclegen.run, "Reporter", TimedReporter):
            run.train()
        if len(marks) != n + 1:
            raise RuntimeError(
                f"timed {len(marks) - 1} Run loop iterations instead of {n}: Run.train() no longer reports "
                "every step through cyclegen.run.Reporter; update RunDriver"
            )
        self.iterations += [b - a for a, b in zip(marks, marks[1:])]
        return (marks[-1] - marks[0]) / n


def time_steps(step: Callable[[], object], n: int, sync: Callable[[], None], record: list[float] | None = None) -> float:
    """Mean seconds per step over `n` steps; each step's own time is appended to `record`."""
    sync()
    start = previous = time.perf_counter()
    for _ in range(n):
        step()
        if record is not None:
            sync()
            now = time.perf_counter()
            record.append(now - previous)
            previous = now
    sync()
    return (time.perf_counter() - start) / n


# -- the correctness check -----------------------------------------------------------------------


def check_equal_work(trainer: Trainer, hand: HandWrittenAEGAN, steps: int) -> dict[str, Any]:
    """Run both from the same state and global seed; compare losses and then every weight."""
    torch.manual_seed(12345)
    engine = [trainer.step().cpu() for _ in range(steps)]
    torch.manual_seed(12345)
    handmade = [torch.stack(hand.step()).cpu() for _ in range(steps)]
    rows = []
    for i, (e, h) in enumerate(zip(engine, handmade)):
        e = e[: len(h)]  # the engine's step appends each critic's score spread to the losses
        rows.append({"step": i + 1, "exact": torch.equal(e, h), "max_abs_diff": float((e - h).abs().max()),
                     "engine": e.tolist(), "hand": h.tolist()})
    weight_diff, weights_exact = 0.0, True
    nets = {"G": (trainer.graph.mappers["G"], hand.G), "E": (trainer.graph.mappers["E"], hand.E),
            "Dx": (trainer.graph.critics["Dx"], hand.Dx), "Dz": (trainer.graph.critics["Dz"], hand.Dz)}
    for engine_net, hand_net in nets.values():
        for (_, a), (_, b) in zip(engine_net.state_dict().items(), hand_net.state_dict().items()):
            weights_exact &= torch.equal(a, b)
            if a.is_floating_point():
                weight_diff = max(weight_diff, float((a - b).abs().max()))
    loss_diff = max(r["max_abs_diff"] for r in rows)
    scale = max(max(abs(v) for v in r["engine"]) for r in rows)
    close = loss_diff <= 1e-5 * max(1.0, scale) and weight_diff <= 1e-5
    return {"steps": rows, "losses_exact": all(r["exact"] for r in rows), "weights_exact": weights_exact,
            "max_loss_diff": loss_diff, "max_weight_diff": weight_diff, "passed": close,
            "loss_names": trainer.loss_names}


def print_check(name: str, check: dict[str, Any]) -> None:
    print(f"\n### Equal work ({name}): hand-written vs Trainer.step, same weights, streams and seed\n")
    names = check["loss_names"]
    for row in check["steps"]:
        status = "identical" if row["exact"] else f"max |diff| {row['max_abs_diff']:.3g}"
        print(f"step {row['step']}: {status}")
        for label, e, h in zip(names, row["engine"], row["hand"]):
            print(f"    {label:<28} engine {e:.9g}  hand {h:.9g}")
    print(f"losses bit-identical: {check['losses_exact']}; every weight bit-identical after "
          f"{len(check['steps'])} steps: {check['weights_exact']} (max |diff| {check['max_weight_diff']:.3g})")
    if not check["passed"]:
        print("EQUAL-WORK CHECK FAILED: the two loops do not train the same model; the timings compare unequal work")


# -- timing ---------------------------------------------------------------------------------------


def spread(values: list[float]) -> tuple[float, float, float]:
    """Median and interquartile range (q1, q3)."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q2, q1, q3


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    preset = PRESETS[name]
    threads = args.threads or preset.threads
    steps = args.steps or preset.steps
    blocks = args.blocks or preset.blocks
    warmup = preset.warmup if args.warmup is None else args.warmup
    check_steps = preset.check_steps if args.check_steps is None else args.check_steps
    torch.set_num_threads(threads)

    exp = open_experiment(name, args)
    hand = hand_loop_for(exp)  # copies the networks before the engine trains them
    trainer = Trainer(exp.graph, exp.recipe, exp.device)
    sync = synchronizer(exp.device)
    result: dict[str, Any] = {"recipe": name, "threads": threads, "steps_per_block": steps, "blocks": blocks,
                              "settings": asdict(hand.s)}
    if check_steps:
        result["check"] = check = check_equal_work(trainer, hand, check_steps)
        print_check(name, check)
        if not check["passed"] and not args.force:
            raise SystemExit(1)

    with tempfile.TemporaryDirectory(prefix="engine-overhead-") as tmp:
        # The Run gets its own copy of the experiment (same seed, so the same initial weights);
        # an unreachable train.steps lets the benchmark end its blocks, not the recipe.
        run_exp = open_experiment(name, args, ["train.steps=1_000_000_000"])
        driver = RunDriver(run_exp, Path(tmp) / "run", sync)
        step_times: dict[str, list[float]] = {"hand": [], "trainer": [], "run": driver.iterations}
        ways: dict[str, Callable[[int], float]] = {
            "hand": lambda n: time_steps(hand.step, n, sync, step_times["hand"]),
            "trainer": lambda n: time_steps(trainer.step, n, sync, step_times["trainer"]),
            "run": driver.time_steps,
        }
        for way in ways.values():
            if warmup:
                way(warmup)
        for times in step_times.values():
            times.clear()
        per_block: dict[str, list[float]] = {way: [] for way in ways}
        order = list(ways)
        for b in range(blocks):
            for way in order[b % 3:] + order[: b % 3]:
                per_block[way].append(ways[way](steps))
            if args.verbose:
                print(f"round {b + 1}: " + "  ".join(f"{w} {per_block[w][-1] * 1e3:.3f} ms" for w in ways), flush=True)
        iterations = driver.iterations

    hand_s, trainer_s, run_s = (per_block[w] for w in ("hand", "trainer", "run"))
    result["per_block_s"] = per_block
    result["median_s"] = {w: statistics.median(v) for w, v in per_block.items()}
    # Every step timed alone: thousands of samples per way, interleaved in blocks, so the median
    # step is robust to the bursts of other load that widen the block ratios' spread.
    step_medians = {w: statistics.median(v) for w, v in step_times.items()}
    result["step_median_s"] = step_medians
    result["step_median_ratio"] = {w: step_medians[w] / step_medians["hand"] for w in ("trainer", "run")}
    result["run_amortised_s"] = statistics.fmean(run_s)
    result["run_iteration_median_s"] = statistics.median(iterations)
    result["run_iteration_max_s"] = max(iterations)
    result["trainer_ratio"] = spread([t / h for t, h in zip(trainer_s, hand_s)])
    result["run_ratio"] = spread([r / h for r, h in zip(run_s, hand_s)])
    result["trainer_extra_us"] = spread([(t - h) * 1e6 for t, h in zip(trainer_s, hand_s)])
    result["run_amortised_ratio"] = statistics.fmean(run_s) / statistics.fmean(hand_s)
    result["goal"] = preset.goal
    return result


def print_table(results: list[dict[str, Any]]) -> None:
    def ratio(r: tuple[float, float, float]) -> str:
        return f"{r[0]:.3f} ({r[1]:.3f}-{r[2]:.3f})"

    print("\n| recipe | threads | blocks x steps | hand-written s/step | Trainer.step s/step | Run loop s/step "
          "| Run loop amortised s/step | Trainer.step / hand (IQR) | Run / hand (IQR) | Run amortised / hand "
          "| Trainer.step extra us/step (IQR) | median step: Trainer.step / hand | median step: Run / hand "
          "| goal |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        m = r["median_s"]
        extra = r["trainer_extra_us"]
        steps = r["step_median_ratio"]
        verdict = "met" if max(steps.values()) <= r["goal"] else "missed"
        print(f"| {r['recipe']} | {r['threads']} | {r['blocks']} x {r['steps_per_block']} | {m['hand']:.5f} "
              f"| {m['trainer']:.5f} | {m['run']:.5f} | {r['run_amortised_s']:.5f} | {ratio(r['trainer_ratio'])} "
              f"| {ratio(r['run_ratio'])} | {r['run_amortised_ratio']:.3f} | {extra[0]:.0f} ({extra[1]:.0f} to "
              f"{extra[2]:.0f}) | {steps['trainer']:.3f} | {steps['run']:.3f} | <= {r['goal']:.2f}: {verdict} |")
    print("\nBlock ratios: median over rounds of (engine block / hand-written block of the same round), with "
          "the interquartile range. Median step: every step timed alone, the median over all blocks of each "
          "way, then the ratio (the goal's verdict uses these). Run amortised: all Run time over all Run "
          "steps (includes checkpoints and sample pictures at the recipe's intervals).")


# -- profile: where the engine's overhead goes -------------------------------------------------------


def count_ops(step: Callable[[], object], steps: int) -> Counter:
    """Aten operations dispatched per step (forward, backward and optimiser), by name."""
    from torch.utils._python_dispatch import TorchDispatchMode

    counts: Counter = Counter()

    class Counting(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            counts[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

    with Counting():
        for _ in range(steps):
            step()
    return Counter({op: n / steps for op, n in counts.items()})


def profile_calls(step: Callable[[], object], steps: int) -> dict[str, tuple[float, float, float]]:
    """cProfile over `steps` steps: function -> (calls, own seconds, seconds with callees) per step."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        step()
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    merged: dict[str, tuple[float, float, float]] = {}
    for key, (_, calls, own, cumulative, _) in stats.items():
        label = where(key)
        c, o, t = merged.get(label, (0.0, 0.0, 0.0))
        merged[label] = (c + calls / steps, o + own / steps, t + cumulative / steps)
    return merged


def where(key: tuple[str, int, str]) -> str:
    file, line, func = key
    if file == "~":  # a built-in: torch kernels and Python builtins
        return func
    for marker in ("/cyclegen/", "/plugins/", "/torch/", "/contextlib.py", "/dataclasses.py"):
        if marker in file:
            return f"{file[file.index(marker) + 1:]}:{line}({func})"
    return f"{Path(file).name}:{line}({func})"


def micro_costs(trainer: Trainer) -> list[tuple[str, str, float]]:
    """(item, what counts it, seconds per call) of small things the engine does per step."""
    a, b = torch.rand(()), torch.rand(())
    eight = [torch.rand(()) for _ in range(8)]
    group = trainer.groups[0]
    scaler = getattr(trainer, "mapper_scaler", None)
    items: list[tuple[str, str, Callable[[], object]]] = [
        ("torch.zeros(()) (a running total)", "op:zeros", lambda: torch.zeros((), device=trainer.runtime.device)),
        ("0-d tensor + 0-d tensor", "op:add", lambda: a + b),
        ("python float * 0-d tensor (a weight of 1.0)", "op:mul", lambda: 1.0 * a),
        ("0-d tensor / python number", "op:div", lambda: a / 2),
        ("torch.stack of 8 0-d tensors", "op:stack", lambda: torch.stack(eight)),
        ("tensor.float() on float32 (no-op)", "call:TensorBase:float", lambda: a.float()),
        ("OptimGroup.schedule_lr (one group)", "call:cyclegen/optim.py:schedule_lr",
         lambda: group.schedule_lr(trainer.step_count, trainer.recipe.train.steps)),
    ]
    def autocast() -> None:
        with trainer.runtime.autocast():
            pass
    items.append(("Runtime.autocast() at fp32, construct+enter+exit", "call:cyclegen/runtime.py:autocast", autocast))
    if scaler is not None:
        items += [
            ("GradScaler(enabled=False).scale(loss)", "call:amp/grad_scaler.py:scale", lambda: scaler.scale(a)),
            ("GradScaler(enabled=False).unscale_(optimizer)", "call:amp/grad_scaler.py:unscale_",
             lambda: scaler.unscale_(group.optimizer)),
            ("GradScaler(enabled=False).update()", "call:amp/grad_scaler.py:update", lambda: scaler.update()),
        ]
    results = []
    for label, counted_by, fn in items:
        for _ in range(200):
            fn()
        best = float("inf")
        for _ in range(7):  # best of 7: the least disturbed by other processes
            start = time.perf_counter()
            for _ in range(2000):
                fn()
            best = min(best, (time.perf_counter() - start) / 2000)
        results.append((label, counted_by, best))
    return results


def periodic_costs(exp: Experiment, trainer: Trainer, directory: Path) -> list[tuple[str, int, float]]:
    """(event, every how many steps, seconds per event) of what the Run loop does now and then."""
    train = exp.recipe.train
    run = Run(exp, directory, console=Console(file=io.StringIO(), width=200))
    run.trainer = trainer  # time the events on the trained state
    run.prepare()
    run.window_start, run.window_step = time.perf_counter(), trainer.step_count
    losses = trainer.step()
    events: list[tuple[str, int, float]] = []
    for _ in range(3):
        run.pending = [(trainer.step_count, losses.clone()) for _ in range(train.log_every)]
        start = time.perf_counter()
        run.flush_log()
        events.append(("flush_log (metrics.jsonl line)", train.log_every, time.perf_counter() - start))
    for _ in range(2):
        run.saved_step = None
        start = time.perf_counter()
        run.checkpoint()
        events.append(("checkpoint", train.checkpoint_every, time.perf_counter() - start))
    sampler = SampleWriter(exp.graph, exp.recipe.seed, train.sample_count, exp.device, directory / "samples")
    for _ in range(2):
        start = time.perf_counter()
        sampler.write(trainer.step_count)
        events.append(("sample pictures", train.sample_every, time.perf_counter() - start))
    best: dict[str, tuple[str, int, float]] = {}
    for name, every, seconds in events:
        if name not in best or seconds < best[name][2]:
            best[name] = (name, every, seconds)
    return list(best.values())


TINY_NETS = ("mappers.G", "mappers.E", "critics.Dx", "critics.Dz")
TINY_TOY = ["train.batch_size=2", *(f"{net}.hidden=2" for net in TINY_NETS)]


def overhead_floor(args: argparse.Namespace, rounds: int, steps: int) -> dict[str, Any]:
    """The engine's overhead with next to no compute: the toy recipe with batch 2 and 2 hidden units.

    Both loops then cost little more than their Python and per-operation dispatch, and the
    engine's extra time, which does not depend on tensor sizes, stands out. Alternating blocks.
    """
    exp = open_experiment("toy", args, TINY_TOY)
    hand = hand_loop_for(exp)
    trainer = Trainer(exp.graph, exp.recipe, exp.device)
    sync = synchronizer(exp.device)
    for _ in range(max(1, steps // 4)):
        trainer.step()
        hand.step()
    hand_s, engine_s = [], []
    for r in range(rounds):
        pair = [(hand_s, hand.step), (engine_s, trainer.step)]
        for times, step in pair if r % 2 == 0 else pair[::-1]:
            times.append(time_steps(step, steps, sync))
    return {"hand_s": statistics.median(hand_s), "engine_s": statistics.median(engine_s),
            "extra_s": spread([e - h for e, h in zip(engine_s, hand_s)])}


def profile(name: str, args: argparse.Namespace) -> None:
    preset = PRESETS[name]
    torch.set_num_threads(args.threads or preset.threads)
    exp = open_experiment(name, args)
    hand = hand_loop_for(exp)
    trainer = Trainer(exp.graph, exp.recipe, exp.device)
    steps = args.profile_steps
    print(f"\n## Where the engine's per-step overhead goes ({name}, {torch.get_num_threads()} threads)")
    for _ in range(min(steps, 20)):
        trainer.step()
        hand.step()
    sync = synchronizer(exp.device)
    hand_s = statistics.median(time_steps(hand.step, max(1, steps // 5), sync) for _ in range(5))

    # 1. Aten operations per step: deterministic, independent of the load on the machine.
    op_steps = max(1, min(steps, 5))
    engine_ops, hand_ops = count_ops(trainer.step, op_steps), count_ops(hand.step, op_steps)
    print(f"\n### Aten operations per step (forward, backward, optimiser): engine {sum(engine_ops.values()):g}, "
          f"hand-written {sum(hand_ops.values()):g}\n")
    print("| op | engine | hand-written | extra |")
    print("|---|---|---|---|")
    for op in sorted(set(engine_ops) | set(hand_ops), key=lambda o: -(engine_ops[o] - hand_ops[o])):
        if engine_ops[op] != hand_ops[op]:
            print(f"| {op} | {engine_ops[op]:g} | {hand_ops[op]:g} | {engine_ops[op] - hand_ops[op]:+g} |")

    # 2. Python: cProfile over both loops. The profiler inflates Python's share, so compare the
    # two loops under it rather than reading its times as the real cost.
    engine_calls = profile_calls(trainer.step, steps)
    hand_calls = profile_calls(hand.step, steps)
    e_total = next(v for k, v in engine_calls.items() if k.startswith("cyclegen/trainer.py") and k.endswith("(step)"))
    e_total = e_total[2]
    h_total = next(v for k, v in hand_calls.items() if k.startswith("engine_overhead.py") and k.endswith("(step)"))[2]
    n_e = sum(v[0] for v in engine_calls.values())
    n_h = sum(v[0] for v in hand_calls.values())
    print(f"\n### cProfile over {steps} steps: {n_e:.0f} Python and built-in calls per step in the engine, {n_h:.0f} "
          f"in the hand-written loop; {e_total * 1e6:.0f} vs {h_total * 1e6:.0f} us per step under the profiler\n")
    print("Functions the engine calls that the hand-written loop does not (or more often), by the extra own time:\n")
    print("| function | calls/step engine | calls/step hand | own us/step engine | extra own us/step |")
    print("|---|---|---|---|---|")
    rows = []
    for label, (calls, own, _) in engine_calls.items():
        h_calls, h_own, _ = hand_calls.get(label, (0.0, 0.0, 0.0))
        if label.startswith("engine_overhead.py") or abs(calls - h_calls) < 1e-9:
            continue
        rows.append((own - h_own if h_calls else own, label, calls, h_calls, own))
    rows.sort(reverse=True)
    for extra, label, calls, h_calls, own in rows[: args.profile_top]:
        print(f"| {label} | {calls:g} | {h_calls:g} | {own * 1e6:.1f} | {extra * 1e6:.1f} |")
    print(f"\nAll such rows together: {sum(r[0] for r in rows) * 1e6:.0f} us/step extra own time under the profiler.")
    print("\nEngine methods with their callees per step (includes the shared network and optimiser work):\n")
    print("| method | calls/step | us/step with callees | own us/step |")
    print("|---|---|---|---|")
    methods = [(label, v) for label, v in engine_calls.items() if label.startswith(("cyclegen/", "torch/amp/"))]
    for label, (calls, own, cumulative) in sorted(methods, key=lambda kv: -kv[1][2])[: args.profile_top]:
        print(f"| {label} | {calls:g} | {cumulative * 1e6:.0f} | {own * 1e6:.1f} |")

    # 3. The cost of each small item without the profiler, times how often the engine does it
    # more than the hand-written loop (aten ops) or at all (Python calls).
    def calls_of(calls: dict[str, tuple[float, float, float]], fragment: str, func: str) -> float:
        return sum(v[0] for k, v in calls.items() if fragment in k and (k.endswith(f"({func})") or f"'{func}'" in k))

    print(f"\n### The same items without the profiler (best of 7 x 2000 calls), against a hand-written step "
          f"of {hand_s * 1e6:.0f} us\n")
    print("| item | us/call | extra per step | est. us/step | share of the step |")
    print("|---|---|---|---|---|")
    total = 0.0
    for label, counted_by, seconds in micro_costs(trainer):
        kind, key = counted_by.split(":", 1)
        if kind == "op":
            count = engine_ops[key] - hand_ops[key]
        else:
            fragment, func = key.rsplit(":", 1)
            count = calls_of(engine_calls, fragment, func) - calls_of(hand_calls, fragment, func)
        cost = seconds * count
        total += cost
        print(f"| {label} | {seconds * 1e6:.2f} | {count:g} | {cost * 1e6:.1f} | {cost / hand_s:.2%} |")
    print(f"\nThese items: about {total * 1e6:.0f} us/step ({total / hand_s:.1%} of the hand-written step); the rest "
          "of the engine's extra time is its own Python (the cProfile table above).")

    # 4. The overhead itself, at next to no compute (toy networks only).
    if name == "toy":
        floor = overhead_floor(args, rounds=7, steps=max(10, steps))
        extra = floor["extra_s"]
        print(f"\n### At next to no compute (the toy recipe at batch 2 with 2 hidden units; 7 alternating rounds "
              f"of {max(10, steps)} steps)\n")
        print(f"hand-written {floor['hand_s'] * 1e6:.0f} us/step, Trainer.step {floor['engine_s'] * 1e6:.0f} us/step: "
              f"the engine's own overhead is {extra[0] * 1e6:.0f} us/step (IQR {extra[1] * 1e6:.0f} to "
              f"{extra[2] * 1e6:.0f}), {extra[0] / hand_s:.1%} of the real toy recipe's hand-written step "
              f"({hand_s * 1e6:.0f} us here).")

    # 5. What the Run loop does every so often, amortised over its interval.
    with tempfile.TemporaryDirectory(prefix="engine-overhead-") as tmp:
        events = periodic_costs(exp, trainer, Path(tmp) / "run")
    print(f"\n### Periodic Run-loop work at the recipe's intervals (best of 2-3), against a hand-written step of "
          f"{hand_s * 1e6:.0f} us\n")
    print("| event | ms per event | every N steps | amortised us/step | share of the step |")
    print("|---|---|---|---|---|")
    for event, every, seconds in events:
        if every:
            per_step = seconds / every
            print(f"| {event} | {seconds * 1e3:.1f} | {every} | {per_step * 1e6:.1f} | {per_step / hand_s:.2%} |")
        else:
            print(f"| {event} | {seconds * 1e3:.1f} | never | 0 | 0 |")


# -- main -----------------------------------------------------------------------------------------


def describe_machine(args: argparse.Namespace) -> str:
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "?"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"torch {torch.__version__}, python {platform.python_version()}, {cpu}, device {args.device}, "
            f"commit {commit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", choices=["toy", "anime", "both"], default="both")
    parser.add_argument("--steps", type=int, help="steps per timed block (default: toy 50, anime 1)")
    parser.add_argument("--blocks", type=int, help="timed rounds, a block of each way per round (default: toy 60, anime 80)")
    parser.add_argument("--warmup", type=int, help="untimed steps of each way first (default: toy 100, anime 2)")
    parser.add_argument("--threads", type=int, help="torch threads (default: toy 1, anime 2)")
    parser.add_argument("--check-steps", type=int, help="steps of the equal-work check, 0 skips it (default: toy 5, anime 2)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="anime faces: a folder or .zip of images")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override (repeatable)")
    parser.add_argument("--force", action="store_true", help="time even when the equal-work check fails")
    parser.add_argument("--profile", action="store_true", help="also profile the engine's overhead on the toy recipe")
    parser.add_argument("--profile-only", action="store_true", help="only the profile, no timing")
    parser.add_argument("--profile-steps", type=int, default=300)
    parser.add_argument("--profile-top", type=int, default=25, help="rows of the cProfile table")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    parser.add_argument("--verbose", action="store_true", help="print every round's block times")
    args = parser.parse_args()

    print(f"# Engine overhead\n\n{describe_machine(args)}")
    names = ["toy", "anime"] if args.recipe == "both" else [args.recipe]
    results = []
    if not args.profile_only:
        for name in names:
            results.append(measure(name, args))
        print_table(results)
    if args.profile or args.profile_only:
        profile("toy" if args.recipe == "both" else args.recipe, args)
    if args.json:
        args.json.write_text(json.dumps({"machine": describe_machine(args), "results": results}, indent=1) + "\n")
    failed = [r["recipe"] for r in results if "check" in r and not r["check"]["passed"]]
    if failed:
        print(f"\nequal-work check failed for: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
