#!/usr/bin/env bash
# The CUDA path of ktsketch in one run (at most 8 minutes on one GPU): AMP, DDP with NCCL, bench, demo, a CUFS-sized run.
#
#   tools/gpu_check.sh [--dry-run] [--only amp,ddp,bench,demo,train] [--out DIR] [--json FILE]
#
# Runs tools/gpu_check.py with this checkout's package (PYTHONPATH, no install needed) and $PYTHON (default: python3,
# else python). A machine without network whose python lacks some of ktsketch's dependencies (fastcore and piq
# on a bare CUDA image) can bring their wheels in .whl/ at the repository root: they are installed offline into
# a temporary folder first. Exit: 0 all parts passed, 1 a part failed, 2 nothing ran (no CUDA without --dry-run,
# no torch, missing packages).
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
py="${PYTHON:-}"
if [ -z "$py" ]; then
    if command -v python3 >/dev/null 2>&1; then py=python3; else py=python; fi
fi
if ! command -v "$py" >/dev/null 2>&1; then
    echo "gpu_check: no python found (tried ${PYTHON:-python3, python}): set PYTHON to one that has torch" >&2; exit 2
fi
if ! "$py" -c "import torch" >/dev/null 2>&1; then
    echo "gpu_check: torch cannot be imported by $(command -v "$py"): run with PYTHON set to a python that has torch" >&2; exit 2
fi
site=""
missing="$("$py" "$here/gpu_check.py" --missing)"
if [ -n "$missing" ] && compgen -G "$repo/.whl/*.whl" >/dev/null; then   # a machine without network: wheels brought along
    site="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check_site.XXXXXX")"
    echo "gpu_check: installing $(cd "$repo/.whl" && ls *.whl | tr '\n' ' ')offline for: $missing" >&2
    if ! "$py" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check --target "$site" "$repo"/.whl/*.whl; then
        rm -rf "$site"; echo "gpu_check: the wheels in $repo/.whl could not be installed offline (see pip's message above)" >&2; exit 2
    fi
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
rc=0
"$py" "$here/gpu_check.py" "$@" || rc=$?
if [ -n "$site" ]; then rm -rf "$site"; fi
exit $rc
