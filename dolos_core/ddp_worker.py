"""One rank of a multi-process training, started by torchrun (``train.launch_ddp``):
``python -m torch.distributed.run --standalone --nproc_per_node K -m dolos_core.ddp_worker FILE``.
Nothing imports this module: it is an entry point, so the training loop and it form no cycle."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from .train import train_run


def _rank_main(spec_file: str) -> None:
    """One rank, started by torchrun: join the group, train, leave."""
    spec = pickle.loads(Path(spec_file).read_bytes())
    cuda = spec["device"] == "cuda"
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        device = torch.device("cuda", local) if cuda else torch.device(spec["device"])
        train_run(spec["exp"], spec["profile"], spec["paths"], spec["run"], device, force=False,
               progress=False, max_epochs=spec["max_epochs"])
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    _rank_main(sys.argv[1])
