#!/usr/bin/env python3
"""Ratios from one criterion run: each path against its baseline and its floor.

Usage:  cargo bench --bench vault && python3 benches/report.py [target/criterion]

Reads the median of each benchmark from criterion's estimates.json files (so
every number comes from the same `cargo bench` run) and prints
- vault paths against bare opaque-ke (same ciphersuite, parsed inputs),
- the vault's recovery start against its floor: the group operations it
  cannot avoid (4 variable-base multiplications, 1 basepoint-table
  multiplication, 5 compressions),
- the client against raw Argon2 with the same parameters,
- bundle verification against two strict Ed25519 verifications plus its
  hashing (the target), and its parts against theirs,
- the monitor on 10,000 epochs against the signature verifications it
  cannot skip (`cargo bench -p bkv-auditor --bench monitor`),
- and the stored record's size and the vault's peak memory under 100,000
  records, from `cargo bench --bench memory` (target/criterion/memory/).
"""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join("target", "criterion")


def median_ns(group, name):
    path = os.path.join(root, group, name, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except FileNotFoundError:
        return None


def fmt(ns):
    if ns is None:
        return "      n/a"
    if ns >= 1e6:
        return f"{ns / 1e6:8.2f} ms"
    return f"{ns / 1e3:8.1f} µs"


rows = []


def ratio(label, num, den, target=None):
    a, b = num, den
    if a is None or b is None:
        rows.append((label, fmt(a), fmt(b), "n/a", ""))
        return
    r = a / b
    verdict = ""
    if target is not None:
        verdict = "meets target" if r <= target else f"MISSES target {target:.2f}x"
    rows.append((label, fmt(a), fmt(b), f"{r:5.3f}x", verdict))


g = lambda n: median_ns("group", n)
var, table, comp, decomp = g("variable_base_mul"), g("basepoint_table_mul"), g("compress"), g("decompress")
floor = None
if None not in (var, table, comp):
    floor = 4 * var + table + 5 * comp

start = median_ns("vault", "recovery_start")
bare_start = median_ns("baseline", "server_login_start")
ratio("vault recovery start / bare ServerLogin::start", start, bare_start, 1.00)
ratio("vault recovery start / floor (4 var + 1 table + 5 compress)", start, floor)
ratio("bare ServerLogin::start / floor", bare_start, floor)
ratio("vault recovery finish / bare ServerLogin::finish", median_ns("vault", "recovery_finish"), median_ns("baseline", "server_login_finish"))
# Revision 11 (SPEC.md §4.4): the X-Wing channel. Today's recovery start
# without it is the same run's vault path less the channel work the vault
# now does (open the KE1, seal the KE2), each measured in group `channel`;
# before the channel, the vault path was at or below bare ServerLogin::start
# (BENCHMARKS.md), which is the second, measured-only baseline.
ch = lambda n: median_ns("channel", n)
vault_channel = None
if None not in (ch("vault_open_ke1"), ch("vault_seal_ke2")):
    vault_channel = ch("vault_open_ke1") + ch("vault_seal_ke2")
if None not in (start, vault_channel):
    ratio("vault recovery start / the same without the channel (derived)", start, start - vault_channel, 1.30)
ratio("vault recovery start / bare ServerLogin::start (no channel)", start, bare_start, 1.30)
client_channel = None
if None not in (ch("client_seal_ke1"), ch("client_open_ke2_seal_ke3")):
    client_channel = ch("client_seal_ke1") + ch("client_open_ke2_seal_ke3")
ratio("client channel work / raw Argon2 (default params)", client_channel, median_ns("client_default", "raw_argon2"), 0.01)
for params in ("test", "default", "default_parallel"):
    group = f"client_{params}"
    if median_ns(group, "recovery") is None and params.endswith("parallel"):
        continue  # run `cargo bench --bench vault --features parallel -- client_default` for it
    # Raw Argon2 is always the sequential argon2 crate with the same parameters.
    raw = median_ns(group, "raw_argon2")
    target = 1.02 if params.startswith("default") else None
    ratio(f"client recovery ({params} params) / raw Argon2", median_ns(group, "recovery"), raw, target)
    ratio(f"client registration ({params} params) / raw Argon2", median_ns(group, "registration"), raw)
# The client's own work (OPRF, 3DH, envelope, HKDFs, AEADs) does not depend
# on the Argon2 parameters, so it is measured with the test parameters and
# added to raw Argon2 at the default ones: the same ratio, without the few
# per cent by which two 130 ms measurements taken seconds apart drift.
for flow in ("recovery", "registration"):
    t, t_raw = median_ns("client_test", flow), median_ns("client_test", "raw_argon2")
    d_raw = median_ns("client_default", "raw_argon2")
    if None not in (t, t_raw, d_raw):
        ratio(f"client {flow} (default params), derived: raw Argon2 + own work {fmt(t - t_raw).strip()} / raw Argon2", d_raw + t - t_raw, d_raw, 1.02 if flow == "recovery" else None)

bundle = median_ns("bundle", "verify")
two_ed = median_ns("bundle", "two_ed25519_verify_strict")
if bundle is not None:
    b = lambda n: median_ns("bundle", n)
    ed, hashing = b("ed25519_verify_strict"), b("artifact_and_proof_hashes")
    ratio("bundle verification / (2 strict Ed25519 + hashing)", bundle, two_ed, 1.2)
    if None not in (ed, hashing):
        ratio("bundle verification / (3 strict Ed25519 + hashing)", bundle, 3 * ed + hashing)
    ratio("pinned-key strict verification / ed25519-dalek verify_strict", b("pinned_verify_strict"), ed)
    ratio("checkpoint note (parse + 1 pinned verification) / 1 verify_strict", b("checkpoint_note"), ed)
    ratio("inclusion proof (1,000-entry log) / artifact + proof hashes", b("inclusion_proof"), hashing)
    pin = b("pin_key")
    if pin is not None:
        rows.append(("pinning one key (PinnedKey::new, once per key)", fmt(pin), "", "", ""))

# The monitor (`cargo bench -p bkv-auditor --bench monitor`): 10,000 epochs
# with a remembered state, against the 30,000 strict verifications it must do.
ratio("monitor, 10,000 epochs / 30,000 strict Ed25519 verifications",
      median_ns("monitor", "verify_namespace_10000"), median_ns("monitor", "floor_30000_verifications"))

width = max(len(r[0]) for r in rows)
print(f"{'path':<{width}}  {'ours':>11}  {'baseline':>11}  {'ratio':>7}")
for label, a, b, r, verdict in rows:
    print(f"{label:<{width}}  {a:>11}  {b:>11}  {r:>7}  {verdict}")

print()
try:
    with open(os.path.join(root, "memory", "memory.json")) as f:
        mem = json.load(f)
    verdict = "meets target" if mem["record_bytes"] <= 320 else "MISSES target 320"
    print(f"stored record: {mem['record_bytes']} bytes (target <= 320: {verdict}); "
          f"{mem['value_bytes']} bytes per value in memory")
    if mem["peak_rss_growth_bytes"] is not None:
        g = mem["peak_rss_growth_bytes"]
        print(f"vault with {mem['records']} records: peak RSS grew by {g / 2**20:.1f} MiB "
              f"({g / mem['records']:.0f} bytes per record)")
except FileNotFoundError:
    print("stored record: run `cargo bench --bench memory` first")

print()
print("group operations (medians):")
for name, ns in (("variable-base mul", var), ("basepoint-table mul", table), ("compress", comp), ("decompress", decomp)):
    print(f"  {name:<22} {fmt(ns)}")
print()
print("recovery start by phase (medians; BENCHMARKS.md derives the rest):")
for name in ("ke1_decode", "record_decode", "oprf_key_derivation", "server_login_start"):
    print(f"  {name:<22} {fmt(median_ns('phases', name))}")
print()
print("the channel (medians):")
for name in ("xwing_decapsulate", "vault_open_ke1", "vault_seal_ke2", "client_seal_ke1", "client_open_ke2_seal_ke3"):
    print(f"  {name:<26} {fmt(median_ns('channel', name))}")
for name in ("registration_response", "registration_upload"):
    print(f"  vault {name:<16} {fmt(median_ns('vault', name))}")
