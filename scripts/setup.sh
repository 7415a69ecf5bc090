#!/usr/bin/env bash
# Installs what imgconv needs on Debian 12 (system -dev libraries; with --test also the Python
# test packages, the Python reader of python/, torch and tensorflow-cpu, in .venv) and builds the
# release binary. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=0
[ "${1:-}" = "--test" ] && want_tests=1

packages=(pkg-config libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev libtiff-dev libwebp-dev libgif-dev libhdf5-dev zlib1g-dev libdeflate-dev libisal-dev libxxhash-dev libssl-dev libavif-dev libheif-dev)
# The test packages: strace also kills a shard in the Dask test; Slurm and munge run the Slurm
# test's own one-node cluster (Tests/Interop/test_engines_slurm.py starts and stops it); dpkg-dev
# and lintian: scripts/package-deb.sh and its test (Tests/Interop/test_deb.py); chromium: the
# card's browser test (Tests/Interop/test_card.py).
[ $want_tests = 1 ] && packages+=(unzip hdf5-tools time strace slurmctld slurmd slurm-client munge dpkg-dev lintian chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ $want_tests = 1 ] && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ $want_tests = 1 ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-test.txt
  # The Python reader (python/), installed as users install it, then the frameworks its dataset
  # tests use when pip can give them (else python/tests skips those tests, printing why):
  # torch only as a CPU-only build from the wheel folder pip is configured with (find-links;
  # PyPI's Linux torch brings several GB of CUDA libraries), its dependencies from PyPI; and
  # tensorflow-cpu from PyPI.
  .venv/bin/python -m pip install -q --disable-pip-version-check ./python
  rm -rf python/build python/imgconv.egg-info
  if ! .venv/bin/python -c 'import torch' >/dev/null 2>&1; then
    if .venv/bin/python -m pip install -q --disable-pip-version-check --no-index --no-deps torch >/dev/null 2>&1; then
      .venv/bin/python -m pip install -q --disable-pip-version-check torch \
        || echo "setup: torch's dependencies cannot be installed: the torch tests will be skipped" >&2
    else
      echo "setup: no CPU-only torch wheel is available to pip: the torch tests will be skipped" >&2
    fi
  fi
  if ! .venv/bin/python -c 'import tensorflow' >/dev/null 2>&1; then
    .venv/bin/python -m pip install -q --disable-pip-version-check tensorflow-cpu \
      || echo "setup: tensorflow-cpu cannot be installed: the tf.data tests will be skipped" >&2
  fi
fi

bash scripts/build-release.sh || true
test -x .build/release/imgconv
