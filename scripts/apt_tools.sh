#!/usr/bin/env bash
# Installs the system tools the project uses where they are missing, with apt
# (called by setup.sh): bubblewrap isolates task code (plugins/sandbox/sandbox_plugin.py;
# without it the sandbox falls back to a plain rlimited subprocess), tmux runs
# the live view's tests in a real 80 x 24 terminal (skipped without it). Cheap
# (~5 s); nothing where apt is missing. apt's own output stays quiet: if it
# fails (e.g. another apt holds its lock), one warning line says why, and the
# set-up goes on.
set -uo pipefail
missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v tmux >/dev/null || missing+=(tmux)
if [ ${#missing[@]} -eq 0 ] || ! command -v apt-get >/dev/null; then
  exit 0
fi
if apt_log=$( { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } 2>&1 >/dev/null); then
  exit 0
fi
case "$apt_log" in
  *"Could not get lock"* | *"Unable to acquire"* | *"Unable to lock"*) reason="another apt holds its lock; try again later" ;;
  *"Permission denied"* | *"are you root?"*) reason="apt needs root" ;;
  *) reason=$(printf '%s\n' "$apt_log" | sed -n '/^E: /{s/^E: //p;q;}') ;;
esac
echo "warning: could not install ${missing[*]} (${reason:-apt failed}); without bubblewrap the sandbox uses its fallback, without tmux the terminal tests are skipped"
