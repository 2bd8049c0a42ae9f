#!/usr/bin/env python3
"""Print the minimum Rust version each workspace crate's locked dependencies
declare: the highest `rust-version` in the closure of its normal and build
dependencies (all features on, every target platform; dev-dependencies do
not count, they do not build for a user).

    scripts/msrv.py            # every workspace member
    scripts/msrv.py bkv        # one

Reads `cargo metadata --locked` (the manifests cargo keeps for each locked
package, the same ones under ~/.cargo/registry/src/*/), so it reflects
Cargo.lock exactly. The `rust-version` in each Cargo.toml is this figure;
rerun it after `cargo update` and raise them if it rose.
"""
import json
import subprocess
import sys


def version_key(v):
    return tuple(int(x) for x in v.split("."))


def main():
    meta = json.loads(
        subprocess.check_output(
            ["cargo", "metadata", "--format-version", "1", "--locked", "--all-features"]
        )
    )
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    members = meta["workspace_members"]
    wanted = sys.argv[1:]
    for member in members:
        name = packages[member]["name"]
        if wanted and name not in wanted:
            continue
        seen, stack = set(), [member]
        while stack:
            node = nodes[stack.pop()]
            for dep in node["deps"]:
                kinds = {k["kind"] for k in dep["dep_kinds"]}
                if kinds == {"dev"} or dep["pkg"] in seen:
                    continue
                seen.add(dep["pkg"])
                stack.append(dep["pkg"])
        declared = [
            (packages[p]["rust_version"], packages[p]["name"])
            for p in seen
            if packages[p].get("rust_version")
        ]
        top = max(declared, key=lambda d: version_key(d[0]))
        needing = sorted(n for v, n in declared if v == top[0])
        print(f"{name}: rust-version {top[0]} (needed by {', '.join(needing)})")


if __name__ == "__main__":
    main()
