"""Keeping the host and an accelerator apart: value checks and constants that never wait for the device.

Reading a tensor's value back to Python (``bool(t)``, ``.item()``) waits for every kernel queued before it, and so
does copying Python data to the device (``torch.tensor(values, device=...)`` synchronises the stream): inside a policy
step on a GPU each is a host↔device round trip that idles the GPU, and neither can be recorded in a CUDA graph.
So a value check on a CPU tensor raises ``ValueError`` at once, and on an accelerator it is queued on the device
(``torch._assert_async``), failing the next synchronising call with the same message; and small constants (view
matrices, scene bounds) are copied to a device once and reused.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor


def check_all(condition: Tensor, message: str) -> None:
    """Raise ``ValueError(message)`` unless every element of the bool tensor ``condition`` is True (see above)."""
    if condition.device.type == "cpu":
        if not bool(condition.all()):
            raise ValueError(message)
    else:
        torch._assert_async(condition.all(), message)


def device_constant(values: tuple, dtype: torch.dtype, device: torch.device | str | None) -> Tensor:
    """``torch.tensor(values, dtype, device)``, made once per (values, dtype, device) and then reused: callers must
    not modify it in place."""
    return _constant(values, dtype, torch.device(device) if device is not None else torch.device("cpu"))


@functools.lru_cache(maxsize=256)
def _constant(values: tuple, dtype: torch.dtype, device: torch.device) -> Tensor:
    with torch.inference_mode(False), torch.no_grad():  # an ordinary tensor, whatever mode the first caller is in
        return torch.tensor(values, dtype=dtype, device=device)
