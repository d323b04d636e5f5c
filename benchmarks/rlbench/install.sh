#!/usr/bin/env bash
# Install the simulator stack behind `bridgevla eval --benchmark rlbench|colosseum|gembench` into the active Python
# environment (docs/benchmarks.md):
#
#   CoppeliaSim 4.1.0 (Ubuntu 20.04 build) -> PyRep -> the RLBench fork the published numbers used -> COLOSSEUM
#
#   benchmarks/rlbench/install.sh                 # RLBench-18 + COLOSSEUM: PyRep@231a1ac, buttomnutstoast/RLBench@587a6a0
#   benchmarks/rlbench/install.sh --gembench      # GemBench: cshizhe/PyRep + rjgpinel/RLBench (use its own venv!)
#   benchmarks/rlbench/install.sh --dry-run       # print what would be done
#
# Options: --prefix DIR (where CoppeliaSim and COLOSSEUM go; default ~/.local/share/bridgevla), --no-colosseum,
# --no-apt. Afterwards: `source <prefix>/coppeliasim_env.sh` in every shell that runs the harness, and run headless
# with `xvfb-run -a bridgevla eval ...`.
set -euo pipefail

COPPELIASIM_NAME=CoppeliaSim_Edu_V4_1_0_Ubuntu20_04
COPPELIASIM_URL=https://www.coppeliarobotics.com/files/V4_1_0/${COPPELIASIM_NAME}.tar.xz
COLOSSEUM_REPO=https://github.com/robot-colosseum/robot-colosseum.git
COLOSSEUM_COMMIT=098a910ae1d490524adb49b8d50735b00a1a62de
# CoppeliaSim's Qt needs these X/xcb libraries even headless; xvfb provides the virtual display.
APT_PACKAGES="xvfb libffi-dev libfontconfig1 libgl1 libglib2.0-0 libx11-xcb1 libxcb1 libxcb-icccm4 libxcb-image0
libxcb-keysyms1 libxcb-render-util0 libxcb-render0 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0
libxcb-xinerama0 libxcb-xinput0 libxcb-xkb1 libxcb-randr0 libxcb-glx0 libxkbcommon-x11-0 libxcb-util1"

PREFIX="${HOME}/.local/share/bridgevla"
EXTRA=rlbench
COLOSSEUM=1
APT=1
DRY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="$2"; shift 2 ;;
        --gembench) EXTRA=gembench; COLOSSEUM=0; shift ;;
        --no-colosseum) COLOSSEUM=0; shift ;;
        --no-apt) APT=0; shift ;;
        --dry-run) DRY=1; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "install_rlbench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python}"
run() {
    echo "+ $*"
    if [ "$DRY" = 0 ]; then "$@"; fi
}

# 1. system libraries (root, or sudo when available)
if [ "$APT" = 1 ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    # shellcheck disable=SC2086
    run $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    run $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $APT_PACKAGES
fi

# 2. CoppeliaSim 4.1.0
ROOT="${PREFIX}/${COPPELIASIM_NAME}"
if [ ! -x "${ROOT}/coppeliaSim.sh" ]; then
    run mkdir -p "${PREFIX}"
    run wget -q -O "${PREFIX}/${COPPELIASIM_NAME}.tar.xz" "${COPPELIASIM_URL}"
    run tar -xf "${PREFIX}/${COPPELIASIM_NAME}.tar.xz" -C "${PREFIX}"
    run rm "${PREFIX}/${COPPELIASIM_NAME}.tar.xz"
fi
ENV_FILE="${PREFIX}/coppeliasim_env.sh"
echo "+ write ${ENV_FILE}"
if [ "$DRY" = 0 ]; then
    cat > "${ENV_FILE}" <<EOF
# source this before running the CoppeliaSim harnesses (written by benchmarks/rlbench/install.sh)
export COPPELIASIM_ROOT="${ROOT}"
export LD_LIBRARY_PATH="\${LD_LIBRARY_PATH:-}:\${COPPELIASIM_ROOT}"
export QT_QPA_PLATFORM_PLUGIN_PATH="\${COPPELIASIM_ROOT}"
EOF
fi
export COPPELIASIM_ROOT="${ROOT}"
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}:${COPPELIASIM_ROOT}"
export QT_QPA_PLATFORM_PLUGIN_PATH="${COPPELIASIM_ROOT}"

# 3. PyRep (built against CoppeliaSim now that COPPELIASIM_ROOT is set) and the RLBench fork, pinned in setup.py
run "${PYTHON}" -m pip install -e "${REPO}[${EXTRA}]"

# 4. COLOSSEUM, editable: its per-task JSON strategies are not in its package data
if [ "$COLOSSEUM" = 1 ]; then
    if [ ! -d "${PREFIX}/robot-colosseum/.git" ]; then
        run git clone -q "${COLOSSEUM_REPO}" "${PREFIX}/robot-colosseum"
    fi
    run git -C "${PREFIX}/robot-colosseum" checkout -q "${COLOSSEUM_COMMIT}"
    run "${PYTHON}" -m pip install --no-deps -e "${PREFIX}/robot-colosseum"
fi

# 5. opencv-python bundles a Qt that clashes with CoppeliaSim's ("could not load the Qt platform plugin xcb")
if "${PYTHON}" -m pip show opencv-python >/dev/null 2>&1; then
    run "${PYTHON}" -m pip uninstall -y opencv-python
    run "${PYTHON}" -m pip install opencv-python-headless==4.12.0.88
fi

# 6. check: the harness imports and the fork is the right one (launching needs a display: xvfb-run)
if [ "$DRY" = 0 ]; then
    "${PYTHON}" - "${EXTRA}" <<'EOF'
import sys

from benchmarks.rlbench.harness import import_harness

extra = sys.argv[1]
mods = import_harness({"rlbench": "RLBench", "rlbench.environment": "RLBench"}, extra)
import pyrep

print(f"ok: pyrep {pyrep.__version__}, rlbench {mods['rlbench'].__version__} importable for --benchmark {extra}")
EOF
fi
echo "done. In every shell: source ${ENV_FILE}; then e.g."
echo "  xvfb-run -a bridgevla eval --config bridgevla/configs/eval_${EXTRA}.yaml --checkpoint RUN/policy env.test_root=DATA"
