"""Handlers for the real CUDA out-of-memory test (torch with a GPU: test_real_cuda_oom)."""

from __future__ import annotations

import os
from typing import Any

import torch

GIB = 1 << 30
_held: list[torch.Tensor] = []


def gpu(payload: dict[str, Any]) -> Any:
    action = payload["action"]
    if action == "hold":  # allocate and keep; the caching allocator reserves the memory
        _held.append(torch.empty(int(payload["gib"] * GIB), dtype=torch.uint8, device="cuda"))
    elif action == "release":  # freed tensors stay reserved in torch's cache
        _held.clear()
    elif action == "oom":  # far beyond any GPU: a real torch.OutOfMemoryError
        torch.empty(1 << 44, dtype=torch.uint8, device="cuda")
    elif action == "oom_holding":  # a step that fails while its own tensors are still in use
        working = torch.empty(int(payload["gib"] * GIB), dtype=torch.uint8, device="cuda")
        working += torch.empty(1 << 44, dtype=torch.uint8, device="cuda")
    elif action == "matmul":
        ones = torch.ones(1024, 1024, device="cuda")
        return {"sum": float((ones @ ones).sum()), "pid": os.getpid()}
    return {
        "reserved_gib": torch.cuda.memory_reserved() / GIB,
        "allocated_gib": torch.cuda.memory_allocated() / GIB,
        "pid": os.getpid(),
    }
