"""bridgevla: BridgeVLA-style 3D manipulation policies (see README.md).

Versions are pinned deliberately (docs/DEPENDENCIES.md says why each library is used):
torch 2.13.0 has a CPU wheel that installs offline on our CI machines and the code runs unchanged on CUDA builds.
"""

from setuptools import find_packages, setup

CORE = [
    "torch==2.13.0",
    "numpy==2.3.5",
    "transformers==5.23.0",
    "tokenizers==0.23.3",
    "safetensors==0.8.0",
    "pyyaml==6.0.3",
    "tqdm==4.70.1",
    "pillow==13.0.0",
    "matplotlib==3.11.2",
    "peft==0.21.2",
    "accelerate==1.15.0",
    "tensorboard==2.21.0",
]

EXTRAS = {
    # The embedded MuJoCo benchmark (renders with EGL or OSMesa from Debian's Mesa packages).
    "sim": ["mujoco==4.0.0", "scipy==1.17.1"],
    # Real robot serving and point-cloud tools.
    "real": ["open3d==0.20.0"],
    "dev": ["pytest==9.2.0", "pytest-xdist==3.8.0", "hypothesis==6.170.15", "ruff==0.17.5"],
}

setup(
    name="bridgevla",
    version="0.1.0",
    description="BridgeVLA-style 3D manipulation policies: rendering, model, training, benchmarks",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["bridgevla*", "rendering*", "pretrain*", "benchmarks*"]),
    package_data={"bridgevla": ["configs/*.yaml"], "pretrain": ["configs/*.yaml"]},
    include_package_data=True,
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["bridgevla=bridgevla.scripts.cli:main"]},
)
