import pytest
import torch

from rendering import bins_to_euler, normalize_quaternion, zoom
from rendering.checks import check_all


def test_check_all_raises_value_error_on_cpu():
    check_all(torch.tensor([True, True]), "never")
    with pytest.raises(ValueError, match="the message"):
        check_all(torch.tensor([[True], [False]]), "the message")


def test_value_checks_still_fire_for_numbers_and_tensors():
    pts = torch.zeros(2, 4, 3)
    for bad in (0.0, -2, torch.tensor(-1.0), torch.tensor([1.0, 0.0])):
        with pytest.raises(ValueError, match="factor must be positive"):
            zoom(pts, torch.zeros(3), bad)
    assert torch.equal(zoom(pts + 1, torch.zeros(3), 2), zoom(pts + 1, torch.zeros(3), torch.tensor(2.0)))
    with pytest.raises(ValueError, match="bins"):
        bins_to_euler(torch.tensor([[0, 72, 1]]), 72)
    with pytest.raises(ValueError, match="quaternion"):
        normalize_quaternion(torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_checks_do_not_synchronise_on_cuda():
    # In "error" sync-debug mode any device -> host read raises; the checks must queue, not read back.
    pts = torch.rand(2, 10, 3, device="cuda")
    zoom(pts, pts[:, 0], 4.0)  # warm-up
    bins_to_euler(torch.zeros(2, 3, dtype=torch.long, device="cuda"), 72)
    torch.cuda.set_sync_debug_mode("error")
    try:
        zoom(pts, pts[:, 0], 4.0)
        bins_to_euler(torch.zeros(2, 3, dtype=torch.long, device="cuda"), 72)
    finally:
        torch.cuda.set_sync_debug_mode("default")
