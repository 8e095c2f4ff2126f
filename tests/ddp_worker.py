"""Run by tests/test_distributed.py under torchrun: trains a recipe, then saves this rank's weights.

`cyclegen run` writes only rank 0's weights (and averages); the test needs every rank's to check they agree.
Usage: torchrun --nproc-per-node N tests/ddp_worker.py RECIPE RUN_DIR DUMP_DIR [KEY=VALUE ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from safetensors.torch import save_file

from cyclegen.distributed import from_environment
from cyclegen.run import train_recipe


def main() -> None:
    recipe, run_dir, dump, *overrides = sys.argv[1:]
    result = train_recipe(Path(recipe), overrides, Path(run_dir), console=Console(quiet=True))
    networks = list(result.graph.networks.items())
    if result.graph.averages is not None:  # `[ema]` averages as ema.<mapper>.<key>
        networks += [(f"ema.{name}", result.graph.averages[name]) for name in result.graph.averages.names()]
    weights = {
        f"{name}.{key}": value.detach().cpu().contiguous()
        for name, net in networks
        for key, value in net.state_dict().items()
    }
    save_file(weights, str(Path(dump) / f"rank{from_environment().rank}.safetensors"))


if __name__ == "__main__":
    main()
