#!/usr/bin/env bash
# Installs everything twin needs on a fresh Debian machine: system packages (headless OpenGL,
# CJK fonts, Chromium for the browser tests) and a virtual environment in .venv with twin and
# its test tools (the `test` extra, which includes the `demo` extra: pygeoapi). Safe to run again:
# it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(libegl1 libgl1-mesa-dri libglx-mesa0 fonts-noto-cjk chromium mapserver-bin)
PYTHON=${PYTHON:-python3}

missing=()
if command -v dpkg >/dev/null 2>&1; then
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
fi
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=.venv/.twin-installed
want=$(cat pyproject.toml examples/twin-plugin-example/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing twin and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  # the example third-party plugin: tests prove it is found through its entry point alone
  .venv/bin/python -m pip install -q --no-deps -e examples/twin-plugin-example
  echo "$want" > "$stamp"
fi
# compile the numba kernels now (cached; about 40 s once, a few seconds after), so no command waits on a compile
.venv/bin/twin warmup | tail -1
# Koop (an open-source ArcGIS FeatureServer) for tests/test_arcgis.py, from the committed package-lock.json
if [ ! -d tests/koop/node_modules/@koopjs/koop-core ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: installing Debian packages: nodejs npm"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  echo "setup: installing Koop into tests/koop/node_modules"
  npm ci --prefix tests/koop --no-audit --no-fund >/dev/null
fi
echo "setup: ready"
