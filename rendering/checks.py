"""Input checks that do not stall an accelerator.

Reading a tensor's value back to Python (``bool(t)``, ``.item()``) waits for every kernel queued before it: inside a
policy step on a GPU that is a host↔device round trip per check, and it breaks CUDA-graph capture. So a value check on
a CPU tensor raises ``ValueError`` at once, and on an accelerator it is queued on the device instead
(``torch._assert_async``), failing the next synchronising call with the same message.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_all(condition: Tensor, message: str) -> None:
    """Raise ``ValueError(message)`` unless every element of the bool tensor ``condition`` is True (see above)."""
    if condition.device.type == "cpu":
        if not bool(condition.all()):
            raise ValueError(message)
    else:
        torch._assert_async(condition.all(), message)
