#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine: installs the Debian packages the tests
# start for real (Alertmanager, Chromium), pagerd with its test extras, then
# runs ruff, mypy and pytest. Used by the README and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
# Headless Chromium and its WebDriver, for the incident page test.
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
    sudo_ apt-get update -qq
    # The packages' services are not wanted: tests start their own on free ports.
    sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${need[@]}" >/dev/null
    sudo_ systemctl stop prometheus-alertmanager >/dev/null 2>&1 || true
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]' \
    --config-settings editable_mode=strict

ruff check .
# mypy checks the installed package from outside the tree: inside it, the source folder
# `pagerd/` would shadow the link tree that maps pagerd.routing and friends.
root=$PWD
(cd "$(mktemp -d)" && mypy --config-file "$root/pyproject.toml")
# `pytest` rather than `python -m pytest`: the latter would put the source `pagerd/`
# folder (without its sub-packages) ahead of the installed package on sys.path.
set +e
pytest -q -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: failing" >&2
    exit 1
fi
exit "$status"
