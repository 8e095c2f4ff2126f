"""The reference's GAN (ConorLazarou/AEGAN-keras, `GenerativeAdversarialNetwork`) trained on the
faces `critic_health.py --export` wrote, recording what its critic says as it trains.

Runs under TensorFlow, not cyclegen: a venv with `pip install "tensorflow-cpu==2.15.1" "numpy<2"`
and a checkout of the reference (`git clone https://github.com/ConorLazarou/AEGAN-keras`). The
reference's code is imported as it is; one thing is patched at run time, its optimiser: TF 2.15's
Adam refuses the `lr=` keyword the code passes, and its legacy Adam is the optimiser the code was
written for (per-variable `clipnorm`, epsilon 1e-7).

A step here is one pass of the reference's loop, as in cyclegen with `mapper_steps = 2` and
single-class critic batches: a critic update on real faces, one on generated faces, then two
generator updates. Every `--every` steps it prints one JSON line: D's mean and spread on 256
held-out faces and 256 samples (inference mode, as `critic_health.py` measures cyclegen's), the
per-pixel spread of the samples, and per critic conv layer the input-independent share of its
output (see critic_health.py).

    python benchmarks/keras_gan_critic.py --reference ../AEGAN-keras/code --faces faces32.npz --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def network_params(width: float) -> dict:
    """The reference's params_64.json for 32x32 faces at `width`: one factor-2 stage fewer, every
    channel count scaled as cyclegen's `width` scales them (its latent branch stays 64 wide: the
    reference code fixes it)."""

    def scaled(channels: list[int]) -> list[int]:
        return [max(1, round(c * width)) for c in channels]

    return {
        "generator": {
            "channels": scaled([256, 128, 128, 64, 64]) + [3],
            "kernel_widths": [4] * 6,
            "strides": [1] * 6,
            "upsampling": [2, 2, 2, 1, 1, 1],
            "starting_shape": [4, 4, max(1, round(64 * width))],
            "hidden_activation": "relu",
            "output_activation": "tanh",
        },
        "discriminator_image": {
            "channels": scaled([64, 64, 128, 128, 128, 256]),
            "kernel_widths": [3] * 6,
            "strides": [2, 2, 2, 1, 1, 1],
            "hidden_activation": "leaky_relu",
        },
        "lr": {"gan_generator": 0.0002, "gan_discriminator": 0.0005},
        "loss": {"adversarial": "binary_crossentropy"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="the reference checkout's code/ folder")
    parser.add_argument("--faces", required=True, help="the .npz critic_health.py --export wrote")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--latent", type=int, default=32)
    args = parser.parse_args()

    import tempfile

    import tensorflow as tf

    sys.path.insert(0, args.reference)
    import generative_model as reference

    reference.Adam = tf.keras.optimizers.legacy.Adam  # the one patch: see the module docstring
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.keras.utils.set_random_seed(args.seed)  # Python, numpy and TF

    faces = np.load(args.faces)
    train = faces["train"].astype(np.float32) / 127.5 - 1
    held_out = faces["test"][:256].astype(np.float32) / 127.5 - 1
    rng = np.random.default_rng(args.seed)

    def real_batch(n: int) -> np.ndarray:
        batch = train[rng.integers(0, len(train), n)]
        flip = rng.random(n) < 0.5  # the reference trains on every face and its mirror image
        batch[flip] = batch[flip, :, ::-1]
        return batch

    def noise(n: int) -> np.ndarray:
        return rng.standard_normal((n, args.latent)).astype(np.float32)

    with tempfile.NamedTemporaryFile("w", suffix=".json") as params:
        json.dump(network_params(args.width), params)
        params.flush()
        gan = reference.GenerativeAdversarialNetwork((32, 32, 3), args.latent, params.name, real_batch, noise)

    critic = gan.discriminator_image
    convs = [layer.output for layer in critic.layers if isinstance(layer, tf.keras.layers.Conv2D)]
    probe = tf.keras.Model(critic.input, convs)
    fixed_noise = np.random.default_rng(10_000 + args.seed).standard_normal((256, args.latent)).astype(np.float32)

    def report(step: int) -> None:
        samples = gan.decode(fixed_noise)
        on_real, on_fake = critic.predict(held_out, verbose=0)[:, 0], critic.predict(samples, verbose=0)[:, 0]
        shares = []
        for out in probe.predict(np.concatenate([held_out, samples]), verbose=0):
            common = out.mean(0, keepdims=True)
            shares.append(float(np.linalg.norm(common, axis=-1).mean() / np.linalg.norm(out - common, axis=-1).mean()))
        line = {
            "impl": "keras reference",
            "seed": args.seed,
            "step": step,
            "d_real": float(on_real.mean()),
            "d_real_std": float(on_real.std()),
            "d_fake": float(on_fake.mean()),
            "d_fake_std": float(on_fake.std()),
            "sample_pixel_std": float(samples.std(0).mean()),
            "common_to_varying": shares,
        }
        print(json.dumps(line), flush=True)

    report(0)
    for step in range(args.every, args.steps + 1, args.every):
        gan.train(batch_size=args.batch, batch_num=2 * args.every, verbose=False)
        report(step)


if __name__ == "__main__":
    main()
