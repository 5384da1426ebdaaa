#!/usr/bin/env bash
# End-to-end check of the Attention dashboard in headless Chromium.
# Installs Debian's chromium + chromium-driver (apt) and the `e2e` extra (selenium) if missing,
# then runs the browser tests. Screenshots land in $TFT_E2E_ARTIFACTS (default build/e2e).
# Usage: tests/e2e/run.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
  SUDO=""
  if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium chromium-driver
fi

PYTHON="${PYTHON:-.venv/bin/python}"
if ! "$PYTHON" -c "import selenium" 2>/dev/null; then
  "$PYTHON" -m pip install --quiet -e '.[test,e2e]'
fi

export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export TFT_E2E_ARTIFACTS="${TFT_E2E_ARTIFACTS:-build/e2e}"
mkdir -p "$TFT_E2E_ARTIFACTS"
"$PYTHON" -m pytest -m e2e tests/e2e -v "$@"
echo "Screenshots: $(ls "$TFT_E2E_ARTIFACTS"/*.png)"
