#!/usr/bin/env bash
# System packages the course needs beyond pip: Apertium with its English->Spanish pair
# (the offline translator of lesson 02). Installs them with apt where we run as root (CI,
# containers); otherwise says exactly what to install and carries on: only lesson 02
# needs them, and it says so in its first cell.
set -u
pkgs="apertium apertium-eng-spa"
if command -v apertium >/dev/null 2>&1 && apertium -l 2>/dev/null | grep -qw eng-spa; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing $pkgs with apt-get (offline translator for lesson 02)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q $pkgs >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $pkgs >/dev/null; } || {
        echo "apt-get could not install $pkgs" >&2; exit 1; }
    exit 0
fi
cat >&2 <<MSG
NOTE: lesson 02's offline translator needs Apertium, which pip cannot install.
  Debian/Ubuntu:  sudo apt-get install -y $pkgs
  macOS:          brew install apertium  (then the eng-spa pair: https://wiki.apertium.org/wiki/Installation)
  or, with internet: export SERVEKIT_TRANSLATION_MODEL=Helsinki-NLP/opus-mt-en-es
Everything else in the course works without it.
MSG
