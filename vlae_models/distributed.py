"""Data-parallel training across processes with ``torch.distributed`` (DDP, ``torchrun``).

Launch any training command under ``torchrun``; :func:`vlae_models.train.train` sees the
environment torchrun sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``...) and
joins the process group itself (gloo on CPU, NCCL on GPUs)::

    torchrun --standalone --nproc_per_node 2 -m benchmarks train beta-vae \\
        --dataset binarized-mnist --steps 5000 --out runs/bvae-ddp

What makes W processes train exactly like one process on the same global batch:

* ``batch_size`` is the *global* batch. Every rank draws the same global batch of indices (the
  epoch-seeded permutation of :class:`~vlae_models.train.EpochBatches`, so the sampler's epoch
  advances with the step) and crops it the same way, then keeps its own contiguous shard of
  ``batch_size / W`` images: the shards are distinct and together are the global batch.
* Posterior noise: every rank draws the noise of the whole global batch and keeps its shard's
  rows (:func:`noise_shard`), so z is what the single process draws.
* The objective's batch statistics are global: the free-bits floor and the capacity target act
  on the all-reduced mean rate, and DDP averages the gradients of the per-shard means, which
  is the gradient of the global mean. The logged loss, rate and distortion are all-reduced.
* Gradient clipping and the skip decision use the all-reduced gradients, so every rank takes
  the same step; EMA weights therefore agree too.
* Rank 0 alone writes the checkpoint, the log and ``run.json``; every rank resumes from the
  same checkpoint (weights, optimizer, EMA and the RNG state, which all ranks share), so
  resumption is exact, with any number of processes.

Left per rank: the VQ-VAE's dead-code restarts read the rank's own batch, and the Gaussian
likelihood's dequantisation noise is drawn per shard; those models train data-parallel but do
not reproduce the single process exactly.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from vlae_models.errors import ModelError


@dataclass(frozen=True)
class Group:
    """This process's place in the data-parallel group."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1

    def shard(self, batch: Tensor) -> Tensor:
        """This rank's contiguous part of a global batch (its length must divide by W)."""
        if not self.parallel:
            return batch
        if len(batch) % self.world:
            raise ModelError(
                f"batch_size {len(batch)} does not split evenly over {self.world} processes"
            )
        size = len(batch) // self.world
        return batch[self.rank * size : (self.rank + 1) * size]

    def mean(self, value: Tensor) -> Tensor:
        """The mean of ``value`` over the ranks (a detached copy; itself on one process)."""
        if not self.parallel:
            return value.detach()
        total = value.detach().clone()
        dist.all_reduce(total)
        return total / self.world

    def sum(self, value: Tensor) -> Tensor:
        if not self.parallel:
            return value.detach()
        total = value.detach().clone()
        dist.all_reduce(total)
        return total

    def barrier(self) -> None:
        if self.parallel:
            dist.barrier()


SINGLE = Group()


def launched_world() -> int:
    """The WORLD_SIZE torchrun (or Slurm through submitit) set for this process, else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def join(device: torch.device) -> tuple[Group, bool]:
    """The process group this process belongs to, joined if torchrun launched it.

    Returns the group and whether this call created the process group (the caller then
    destroys it). The backend is NCCL when training on CUDA, else gloo.
    """
    if launched_world() <= 1 and not dist.is_initialized():
        return SINGLE, False
    created = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        created = True
    local_rank = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return Group(dist.get_rank(), dist.get_world_size(), local_rank), created


def rank_device(device: torch.device, group: Group) -> torch.device:
    """On CUDA each process takes the GPU of its local rank; on CPU every rank shares it."""
    if device.type == "cuda" and group.parallel:
        torch.cuda.set_device(group.local_rank)
        return torch.device("cuda", group.local_rank)
    return device


_NOISE: tuple[int, int] | None = None  # (rank, world) while a sharded step runs


@contextlib.contextmanager
def noise_shard(group: Group) -> Iterator[None]:
    """Within this block :func:`vlae_models.distributions.rsample` draws the noise of the
    global batch and keeps this rank's rows (see the module docstring)."""
    global _NOISE
    previous, _NOISE = _NOISE, (group.rank, group.world) if group.parallel else None
    try:
        yield
    finally:
        _NOISE = previous


def standard_normal_like(std: Tensor) -> Tensor:
    """N(0, 1) noise shaped like ``std``: this rank's rows of the global batch's noise."""
    if _NOISE is None:
        return torch.randn_like(std)
    rank, world = _NOISE
    size = std.shape[0]
    full = torch.randn((size * world, *std.shape[1:]), dtype=std.dtype, device=std.device)
    return full[rank * size : (rank + 1) * size]
