"""Geometry for BridgeVLA-style policies: bounds, world ⇄ cube, zoom, orthographic rendering, projection, heatmap
fusion and targets, rotation bins. Pure torch, batched, CPU and GPU. See docs/geometry.md."""

from rendering.bounds import (
    REFERENCE_BOUNDS,
    SceneBounds,
    clamp_to_bounds,
    crop_to_bounds,
    cube_to_world,
    pad_clouds,
    unzoom,
    world_to_cube,
    zoom,
)
from rendering.cameras import depth_to_world
from rendering.heatmaps import (
    fuse_heatmaps,
    gaussian_targets,
    grid_centers,
    points_in_views,
    soft_fuse_heatmaps,
)
from rendering.render import DEFAULT_SPLAT_RADIUS, Rendered, render
from rendering.rotation import (
    bins_to_euler,
    bins_to_quaternion,
    euler_to_quaternion,
    matrix_to_quaternion,
    normalize_quaternion,
    quaternion_angle,
    quaternion_to_bins,
    quaternion_to_euler,
    quaternion_to_matrix,
)
from rendering.views import NUM_VIEWS, VIEW_NAMES, in_image, lift, pixel_index, project, view_axes, view_matrices

__all__ = [
    "DEFAULT_SPLAT_RADIUS",
    "NUM_VIEWS",
    "REFERENCE_BOUNDS",
    "Rendered",
    "SceneBounds",
    "VIEW_NAMES",
    "bins_to_euler",
    "bins_to_quaternion",
    "clamp_to_bounds",
    "crop_to_bounds",
    "cube_to_world",
    "depth_to_world",
    "euler_to_quaternion",
    "fuse_heatmaps",
    "gaussian_targets",
    "grid_centers",
    "in_image",
    "lift",
    "matrix_to_quaternion",
    "normalize_quaternion",
    "pad_clouds",
    "pixel_index",
    "points_in_views",
    "project",
    "quaternion_angle",
    "quaternion_to_bins",
    "quaternion_to_euler",
    "quaternion_to_matrix",
    "render",
    "soft_fuse_heatmaps",
    "unzoom",
    "view_axes",
    "view_matrices",
    "world_to_cube",
    "zoom",
]
