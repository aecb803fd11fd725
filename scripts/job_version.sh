#!/usr/bin/env bash
# The job code version: <UTC date>-<git describe --always --dirty>, e.g. 2026.11.21-abc1234-dirty.
# Without a commit yet, "nogit" stands in for the describe part.
set -euo pipefail
describe="$(git describe --always --dirty 2>/dev/null || echo nogit)"
echo "$(date -u +%Y.%m.%d)-${describe//[^A-Za-z0-9._-]/-}"
