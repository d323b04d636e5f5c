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

# The simulator harnesses (docs/benchmarks.md). PyRep compiles against CoppeliaSim 4.1.0 at install time, so
# CoppeliaSim comes first (COPPELIASIM_ROOT set): benchmarks/rlbench/install.sh does it all. Forks pinned to the commits
# the published numbers were produced with (REFERENCE §2, §8).
PYREP = "pyrep @ git+https://github.com/stepjam/PyRep.git@231a1ac6b0a179cff53c1d403d379260b9f05f2f"
RLBENCH_PERACT = "rlbench @ git+https://github.com/buttomnutstoast/RLBench.git@587a6a0e6dc8cd36612a208724eb275fe8cb4470"
PYREP_GEMBENCH = "pyrep @ git+https://github.com/cshizhe/PyRep.git@7962b0e04700315c2b0de87a994dbfe77c915c17"
RLBENCH_GEMBENCH = "rlbench @ git+https://github.com/rjgpinel/RLBench.git@ebdc3392c1a11c4cdcc9a440cd61ec345bef42ec"
HARNESS_COMMON = ["cffi==1.17.1", "pyquaternion==0.9.9", "natsort==8.4.0"]  # PyRep's build, RLBench's imports

EXTRAS = {
    # The embedded MuJoCo benchmark (renders with EGL or OSMesa from Debian's Mesa packages).
    "sim": ["mujoco==4.0.0", "scipy==1.17.1"],
    # The policy server and its client (`bridgevla serve`, `bridgevla robot run` with policy.server).
    "serve": ["websockets==17.4", "msgpack==1.2.4"],
    # A real Franka with RealSense cameras (docs/robot.md): the server's libraries, franky, pyrealsense2, OpenCV
    # (ChArUco hand-eye calibration) and point-cloud tools.
    "real": ["websockets==17.4", "msgpack==1.2.4", "franky-control==2.0.0", "pyrealsense2==2.59.1.11053",
             "opencv-python-headless==4.14.0.94", "open3d==0.20.0"],
    # Tests: the serving tests (and the web-viewer screenshot's DevTools client) also need websockets, msgpack and
    # OpenCV; openpi-client==0.1.2 is installed by `make install` with --no-deps (its metadata pins numpy < 2; its
    # client code runs on our numpy 2.3.5).
    # omegaconf: the COLOSSEUM fake in tests mirrors COLOSSEUM's own omegaconf imports (same pin as `rlbench`).
    "dev": ["pytest==9.2.0", "pytest-xdist==3.8.0", "hypothesis==6.170.15", "ruff==0.17.5", "websockets==17.4",
            "msgpack==1.2.4", "opencv-python-headless==4.14.0.94", "omegaconf==2.3.0"],
    # Seeing episodes: `bridgevla inspect` (rerun recordings, pulls pyarrow) and `bridgevla eval ... videos=N` (MP4
    # through PyAV, whose wheels bundle FFmpeg with libx264). Both are imported lazily; nothing else needs them.
    "viz": ["rerun-sdk==0.41.0", "av==18.1.0"],
    # RLBench-18 and COLOSSEUM (COLOSSEUM itself is installed editable by benchmarks/rlbench/install.sh: its task JSONs
    # are not in its package data); omegaconf/hydra-core are COLOSSEUM's config libraries (hydra 1.3 needs omegaconf
    # < 2.4).
    "rlbench": [PYREP, RLBENCH_PERACT, *HARNESS_COMMON, "omegaconf==2.3.0", "hydra-core==1.3.2"],
    # GemBench: its own forks of the same two packages, so a separate environment from `rlbench`.
    "gembench": [PYREP_GEMBENCH, RLBENCH_GEMBENCH, *HARNESS_COMMON],
    # Fanning evaluation episodes out over a Ray cluster (bridgevla eval --ray-address).
    "ray": ["ray==2.60.0"],
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
