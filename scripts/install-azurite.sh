#!/usr/bin/env bash
# Install Azurite (the Azure Storage emulator used by the storage tests) into a
# project-local prefix, pinned to an exact version so every machine runs the same server.
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail

AZURITE_VERSION="3.37.0"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${AZURITE_PREFIX:-$repo_root/.local/azurite}"
installed_manifest="$prefix/node_modules/azurite/package.json"

if [[ -f "$installed_manifest" ]] && grep -qF "\"version\": \"$AZURITE_VERSION\"" "$installed_manifest"; then
    echo "azurite $AZURITE_VERSION already installed in $prefix"
    exit 0
fi

if ! command -v npm >/dev/null; then
    echo "npm not found: cannot install azurite (the Azure storage tests will be skipped)" >&2
    exit 1
fi

mkdir -p "$prefix"
npm install --prefix "$prefix" --no-audit --no-fund --save-exact "azurite@$AZURITE_VERSION"
echo "azurite $AZURITE_VERSION installed: $prefix/node_modules/.bin/azurite-blob"
