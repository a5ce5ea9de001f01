#!/usr/bin/env bash
# Make sure Debian's chromium and chromium-driver are installed: tests/test_report.py opens the
# rendered index.html in headless Chromium through /usr/bin/chromedriver.
# Idempotent and quick: returns at once when both are there. Exit 1 when they cannot be installed
# (not Debian, no root and no password-less sudo, no package mirror); the browser test then skips
# with that reason unless HARNESS_REQUIRE_BROWSER=1.
set -euo pipefail

have() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }
if have; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: no apt-get on this machine; install chromium and chromedriver" \
         "(/usr/bin/chromium, /usr/bin/chromedriver) to run the browser test" >&2
    exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        echo "ensure-chromium: not root and no password-less sudo; run as root:" \
             "apt-get install -y chromium chromium-driver" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
echo "ensure-chromium: installing chromium and chromium-driver" >&2
# Try with the package lists already on the machine first; refresh them only when that fails.
if ! "${SUDO[@]}" apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; then
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if ! have; then
    echo "ensure-chromium: apt-get finished but /usr/bin/chromium or /usr/bin/chromedriver is missing" >&2
    exit 1
fi
echo "ensure-chromium: $(/usr/bin/chromedriver --version 2>/dev/null | head -n 1)" >&2
