#!/usr/bin/env bash
# Makes sure Debian's chromium is there for the console's browser tests (Playwright drives it;
# no browser is downloaded). Run by `make test`. Installs it with apt-get when missing and this
# runs as root; otherwise says how, and the browser tests skip (or fail under CI=true).
set -u
chromium=${ASYA_TEST_CHROMIUM:-/usr/bin/chromium}
if [[ -x $chromium ]] || command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: installing Debian's chromium for the browser tests (apt-get)"
  if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; then
    exit 0
  fi
  echo "ensure-chromium: apt-get install chromium failed" >&2
else
  echo "ensure-chromium: chromium is missing; install it with: sudo apt-get install -y chromium" >&2
fi
if [[ ${CI:-} == true ]]; then
  echo "ensure-chromium: CI=true: the browser tests must run; install chromium first" >&2
  exit 1
fi
echo "ensure-chromium: the console's browser tests will be skipped" >&2
exit 0
