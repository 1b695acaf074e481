"""DDP: two CPU processes on the gloo backend train the same model and stay bit-identical."""

from __future__ import annotations

import os
import time

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from uam_ros.train.synthetic import make_synthetic_dataset

WORLD_SIZE = 2
from tiny_model import TRAIN_TINY as TINY_MODEL  # noqa: E402


STAGES = ("dorsal", "action")  # dorsal: DDP with unused parameters (no cross-attention in pretraining)


def _config(out_dir: str, data: str, stage: str, init_from: str = ""):
    from uam_ros.schema import from_dict
    from uam_ros.train.config import TrainConfig

    return from_dict(TrainConfig, {
        "stage": stage, "out_dir": out_dir, "data": {"train": [data], "val_fraction": 0.25}, "batch_size": 3,
        "lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 1, "max_steps": 4, "seed": 1, "threads": 1, "log_every": 1,
        "save_every": 2, "model": {} if init_from else TINY_MODEL, "init_from": init_from,
    }, "test")


def _worker(rank: int, port: int, run_dir: str, data: str, result_dir: str) -> None:
    """One DDP rank, set up the way torchrun sets up a process; trains dorsal, then action from it."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD_SIZE), LOCAL_RANK=str(rank))
    from uam_ros.train.trainer import train

    try:
        init_from = ""
        for stage in STAGES:
            result = train(_config(os.path.join(run_dir, stage), data, stage, init_from), quiet=True)
            weights = {k: v.detach().contiguous() for k, v in result.model.state_dict().items()}
            save_file(weights, os.path.join(result_dir, f"{stage}_rank{rank}.safetensors"))
            init_from = str(result.checkpoint)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def test_two_gloo_ranks_keep_identical_parameters(tmp_path, loopback_port):
    data = make_synthetic_dataset(tmp_path / "data", episodes=2, length=8, image_size=16)
    run_dir, result_dir = tmp_path / "run", tmp_path / "ranks"
    result_dir.mkdir()
    context = mp.spawn(_worker, args=(loopback_port, str(run_dir), str(data), str(result_dir)),
                       nprocs=WORLD_SIZE, join=False)
    deadline = time.monotonic() + 180
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.terminate()
            pytest.fail("DDP ranks did not finish within 180 s")

    from uam_ros.model.config import UAMConfig
    from uam_ros.model.uam import build_model

    results = {}
    for stage in STAGES:
        ranks = [load_file(str(result_dir / f"{stage}_rank{r}.safetensors")) for r in range(WORLD_SIZE)]
        assert ranks[0].keys() == ranks[1].keys()
        for name in ranks[0]:
            assert torch.equal(ranks[0][name], ranks[1][name]), f"{stage}: {name} differs between ranks"
        saved = load_file(str(run_dir / stage / "checkpoint" / "model.safetensors"))
        assert all(torch.equal(saved[k], ranks[0][k]) for k in saved)  # rank 0 wrote what both ranks hold
        results[stage] = ranks[0]

    config = UAMConfig(**TINY_MODEL, vocab_size=results["dorsal"]["ventral.tok_embed.weight"].shape[0])
    with torch.random.fork_rng():
        torch.manual_seed(1)  # the trainer's init recipe with seed 1
        fresh = build_model(config).state_dict()
    assert not torch.equal(fresh["dorsal.queries"], results["dorsal"]["dorsal.queries"]), "dorsal did not train"
    assert torch.equal(fresh["ventral.tok_embed.weight"], results["dorsal"]["ventral.tok_embed.weight"])
    for name in ("ventral.tok_embed.weight", "dorsal.queries", "action_head.action_out.weight"):
        assert not torch.equal(results["dorsal"][name], results["action"][name]), f"action did not train {name}"
