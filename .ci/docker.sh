#!/usr/bin/env bash
# Docker engine and sandbox image for CI. Idempotent; runs as root on a fresh Debian machine.
#   .ci/docker.sh                                   # uses .venv/bin/python when it exists
#   PYTHON=/path/to/venv/bin/python .ci/docker.sh   # any interpreter with reasoner installed
# Installs docker.io and debootstrap (util-linux and openssl too if missing), starts dockerd in
# the background and waits until it answers, then builds the sandbox image (offline, from the
# Debian mirror apt uses) unless `reasoner sandbox check` already passes. Prints how long each
# phase took.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python3; fi
fi
t0=$(date +%s)
phase() { echo "docker.sh: $1 ($(( $(date +%s) - t0 )) s)"; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)   # tests of several hosts: a second daemon ...
command -v openssl >/dev/null 2>&1 || missing+=(openssl)         # ... and a TLS endpoint
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  phase "installed ${missing[*]}"
fi

if ! docker info >/dev/null 2>&1; then
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    echo "docker.sh: dockerd did not answer within 60 s; the end of /var/log/dockerd.log:" >&2
    tail -n 20 /var/log/dockerd.log >&2
    exit 1
  fi
  phase "dockerd is up"
fi

if ! "$PYTHON" -m reasoner.cli sandbox check >/dev/null 2>&1; then
  "$PYTHON" -m reasoner.cli sandbox build
  phase "sandbox image built"
fi
"$PYTHON" -m reasoner.cli sandbox check
phase "ready"
