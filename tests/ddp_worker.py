"""Run by tests/test_distributed.py under torchrun: trains a recipe, then saves this rank's weights.

`cyclegen run` writes only rank 0's weights; the test needs every rank's to check they agree.
Usage: torchrun --nproc-per-node N tests/ddp_worker.py RECIPE RUN_DIR DUMP_DIR [KEY=VALUE ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from safetensors.torch import save_file

from cyclegen import distributed
from cyclegen.experiment import open_recipe
from cyclegen.run import Run


def main() -> None:
    recipe, run_dir, dump, *overrides = sys.argv[1:]
    ranks = distributed.from_environment()
    exp = open_recipe(Path(recipe), overrides)
    exp.device = distributed.local_device(exp.device, ranks)
    distributed.start(ranks, exp.device)
    try:
        run = Run(exp, Path(run_dir), Console(quiet=True), ranks)
        run.prepare()
        run.train()
    finally:
        distributed.stop()
    weights = {
        f"{name}.{key}": value.detach().cpu().contiguous()
        for name, net in run.trainer.graph.networks.items()
        for key, value in net.state_dict().items()
    }
    save_file(weights, str(Path(dump) / f"rank{ranks.rank}.safetensors"))


if __name__ == "__main__":
    main()
