#!/usr/bin/env bash
# Build both layouts of the Go reference peer:
#   <outdir>/go-peer-new   newest upstream field set
#   <outdir>/go-peer-v325  v3.2.5 field set
# Standard library only; no network is needed (GOPROXY=off).
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 <outdir>" >&2
    exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)
cd "$(dirname "$0")"
export GOPROXY=off
go build -trimpath -o "$out/go-peer-new" .
go build -trimpath -tags v325 -o "$out/go-peer-v325" .
echo "built $out/go-peer-new $out/go-peer-v325"
