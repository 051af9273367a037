"""`Replica`: one process's place in a data-parallel group (rank, world size, device) and
the collectives a training step needs (shard a batch, broadcast the parameters, average the
gradients in one all-reduce).

`nas.training.trainer.train_supernet` takes one as ``replica``; the launcher that starts the
ranks is `nas.training.data_parallel` (see its docstring for why a flat all-reduce, not DDP).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


@dataclass(frozen=True)
class Replica:
    """This process's place in an initialised process group: its rank, the world size and
    its device. `train_supernet` takes one as ``replica``."""

    rank: int
    world_size: int
    device: torch.device

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of the (B,) global batch indices: (B / W,)."""
        n = idx.numel() // self.world_size
        return idx[self.rank * n:(self.rank + 1) * n]

    def broadcast_parameters(self, net: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank (one broadcast per dtype), so
        the replicas start equal whatever each one's initialisation did."""
        tensors = [t for t in net.state_dict().values() if t.is_floating_point()]
        for dtype in sorted({t.dtype for t in tensors}, key=str):
            group = [t for t in tensors if t.dtype == dtype]
            flat = torch.cat([t.reshape(-1) for t in group])
            dist.broadcast(flat, src=0)
            _unflatten_into(flat, group)

    def average_gradients(self, net: torch.nn.Module, losses: list[torch.Tensor], *,
                          out_of_time: bool) -> tuple[list[float], bool]:
        """Average every existing ``.grad`` over the ranks in one all-reduce, together with
        the 0-dim ``losses`` and the time-limit vote. Returns the mean losses and whether
        any rank ran out of time.

        The gradients become views into the reduced flat buffer (no copy back): a step of
        this launch-bound supernet pays per kernel, so pack, reduce, scale and unpack are
        four C++ calls, not one copy per parameter."""
        params = [p for p in net.parameters() if p.grad is not None]
        grads = cast("list[torch.Tensor]", [p.grad for p in params])  # all set (filtered)
        vote = torch.full((1,), float(out_of_time), device=grads[0].device)
        extras = torch.cat([torch.stack(losses).float().reshape(-1), vote])
        flat = _flatten_dense_tensors([*grads, extras])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(self.world_size)
        for p, view in zip(params, _unflatten_dense_tensors(flat, grads)):
            p.grad = view
        tail = flat[flat.numel() - extras.numel():].tolist()
        return tail[:-1], tail[-1] > 0

    def barrier(self) -> None:
        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()


def _unflatten_into(flat: torch.Tensor, tensors: list[torch.Tensor]) -> None:
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


__all__ = ["Replica"]
