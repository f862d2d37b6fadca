#!/bin/bash
# Installs what make test needs from Debian when it is absent: chromium
# (and a font) for the status page test, and the shell linter for the
# deploy scripts' test. Bounded: apt gets at most 4 minutes for its lists
# and 6 for the packages (about 15 s on the development machine). When it
# cannot install them it says why and exits 0: those tests then skip,
# naming the missing program, so a slow mirror does not fail make test.
set -u
command -v chromium >/dev/null && command -v shellcheck >/dev/null && exit 0
if ! command -v apt-get >/dev/null; then
  echo "install-chromium: no apt-get here: install chromium for the status page test" >&2
  exit 0
fi
sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo -n)
export DEBIAN_FRONTEND=noninteractive
opts=(-o Acquire::Retries=3 -o Acquire::http::Timeout=30 -o DPkg::Lock::Timeout=120)
start=$(date +%s)
if timeout 240 "${sudo[@]}" apt-get "${opts[@]}" update -qq &&
  timeout 360 "${sudo[@]}" apt-get "${opts[@]}" install -y -qq --no-install-recommends chromium fonts-dejavu-core shellcheck >/dev/null; then
  echo "install-chromium: $(chromium --version 2>/dev/null) installed in $(($(date +%s) - start))s"
else
  echo "install-chromium: could not install chromium in $(($(date +%s) - start))s: the status page test will skip" >&2
fi
exit 0
