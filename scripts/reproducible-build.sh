#!/usr/bin/env bash
# Shows that the vault's code measurement (SPEC.md §30) is reproducible:
# two clean copies of the committed tree, in folders with different names
# and depths, each rebuilt by `bkv audit measure`, give the same SHA-256.
#
#   scripts/reproducible-build.sh [git-ref]      (default: HEAD)
#
# Needs Rust 1.95.0 (the pinned toolchain) with the thumbv7em-none-eabi
# target. Takes a few minutes: two release builds of the vault and its
# dependencies from scratch. CI does not run it.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
ref="${1:-HEAD}"
work="$(mktemp -d "${TMPDIR:-/tmp}/bkv-repro.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "==> building the measuring tool (bkv) from $repo"
cargo build --quiet --release -p bkv --manifest-path "$repo/Cargo.toml"
# Cargo puts the binary under CARGO_TARGET_DIR when it is set.
cp "${CARGO_TARGET_DIR:-$repo/target}/release/bkv" "$work/bkv"

a="$work/first"
b="$work/second/a/much/deeper/folder/named/differently"
for dir in "$a" "$b"; do
  mkdir -p "$dir"
  git -C "$repo" archive "$ref" | tar -x -C "$dir"
done
echo "==> two clean copies of $ref ($(git -C "$repo" rev-parse --short "$ref")):"
echo "    $a"
echo "    $b"

measure() {
  "$work/bkv" audit measure --checkout "$1" --manifest
}

echo "==> measuring the first copy"
first="$(measure "$a")"
echo "==> measuring the second copy"
second="$(measure "$b")"

hash_a="$(printf '%s\n' "$first" | tail -n 1)"
hash_b="$(printf '%s\n' "$second" | tail -n 1)"
echo
echo "first:  $hash_a"
echo "second: $hash_b"
if [ "$hash_a" = "$hash_b" ]; then
  echo "OK: the two builds give the same measurement"
else
  echo "MISMATCH: the builds differ; the files that differ:"
  diff <(printf '%s\n' "$first") <(printf '%s\n' "$second") || true
  exit 1
fi
