#!/usr/bin/env bash
# Browser tests drive Debian's chromium through playwright; playwright's own browser download cannot work
# offline, so the system package is installed here (as root) when missing.
set -u
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "note: /usr/bin/chromium is missing and we are not root; browser tests will be skipped (run: sudo apt-get install chromium)" >&2
  exit 0
fi
echo "installing Debian chromium for the browser tests ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null \
  || echo "warning: apt-get install chromium failed; browser tests will not run" >&2
