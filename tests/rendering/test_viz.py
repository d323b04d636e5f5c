import numpy as np
import pytest
import torch
from PIL import Image

from rendering import gaussian_targets, project, render
from rendering.viz import save_views, views_image


def test_views_png_shows_views_heatmap_and_marker(tmp_path):
    pts = torch.tensor([[[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]])
    out = render(pts, torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]), image_size=32, splat_radius=0.1)
    point = torch.tensor([0.5, 0.5, 0.5])
    heat = gaussian_targets(point[None], 32)[0]
    path = save_views(tmp_path / "v.png", out.features[0], heat, point, scale=1, labels=False)
    img = np.asarray(Image.open(path))
    assert img.shape == (32, 96, 3)
    # The red point at the origin is drawn in the middle of each view (pixel 16 of 32 at u = 15.5 rounds up).
    uvd = project(torch.tensor([0.0, 0.0, 0.0]), 32)
    for k in range(3):
        col, row = int(uvd[k, 0] + 0.5), int(uvd[k, 1] + 0.5)
        r, g, b = img[row, k * 32 + col]
        assert r > 200 and g < 50 and b < 50
    # The marker (green cross) is at the marked point's projection; the heatmap brightens its surroundings.
    uvd = project(point, 32)
    col, row = int(uvd[0, 0] + 0.5), int(uvd[0, 1] + 0.5)
    assert img[row, col - 3, 1] == 255
    plain = np.asarray(views_image(out.features[0], scale=1, labels=False))
    assert plain[row + 1, col + 1].sum() < img[row + 1, col + 1].sum()


def test_viz_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="images"):
        views_image(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="heatmaps"):
        views_image(torch.zeros(3, 3, 8, 8), torch.zeros(3, 4, 4))
