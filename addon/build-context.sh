#!/usr/bin/env bash
# Export the hub's committed source (HEAD) into addon/hub-src/, the Docker build context's copy of
# the hub. Only tracked files go in: no virtualenv, no models, no secrets.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(git -C "$here" rev-parse --show-toplevel)"
rm -rf "$here/hub-src"
mkdir -p "$here/hub-src"
git -C "$root" archive --format=tar HEAD -- ':!addon' | tar -x -C "$here/hub-src"
echo "exported $(git -C "$root" rev-parse --short HEAD) into $here/hub-src"
