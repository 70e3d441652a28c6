#!/usr/bin/python3
"""Checks a small run of bench/run startup (tests/run-all.sh): every point ran, the environment on
slowfs cost thousands of metadata requests per rank, --pybundle with the tree at most 20 per job,
and a tree over two nodes or more read the bundle once: 1.00 to 1.01 x its bytes from the shared file
system, one open by the nodes (the nodes' prologs start apart, and the root keeps the bytes a late
child needs), every node staged by the tree with only the root reading."""
import json
import sys

res = json.load(open(sys.argv[1]))
points = res["points"]
failures = [f"{p['case']} {p['nodes']}x{p['ranks']}: {p.get('error', 'not ok')}" for p in points if not p.get("ok")]
shared = [p["fs"]["metadata_requests"] for p in points if p["case"] == "shared"]
tree = [p["fs"]["metadata_requests"] for p in points if p["case"] == "tree"]
if not shared or min(shared) < 1000:
    failures.append(f"shared: {shared} metadata requests, expected thousands per rank")
if not tree or max(tree) > 20:
    failures.append(f"tree: {tree} metadata requests per job, expected at most 20")
bundle = res["environment"]["tarball_bytes"]
trees = [p for p in points if p["case"] == "tree" and p["nodes"] > 1]
tree_bytes = [p["fs"]["file_read_bytes"] for p in trees]
# The count is real: slowfs (direct_io) served the whole bundle once, through one open by a node and
# one by srun's check at submission (16 KiB), and the nodes' stage lines say who read it: the root
# all of it, every other node nothing, each staged by the tree.
if not tree_bytes or max(tree_bytes) > 1.01 * bundle or min(tree_bytes) < bundle:
    failures.append(f"tree: {tree_bytes} bytes read of a {bundle}-byte bundle, expected {bundle} to "
                    f"{int(1.01 * bundle)}")
for p in trees:
    opens = p["fs"].get("file_opens")
    if opens != 2:
        failures.append(f"tree {p['nodes']}x{p['ranks']}: the bundle opened {opens} times on slowfs, "
                        "expected 2 (srun's check, the root)")
    recs = p.get("stage_records", [])
    lines = sorted((r["node"], r["mode"], r["outcome"], r["shared_bytes"]) for r in recs)
    want = sorted((r["node"], "tree", "staged", bundle if r["role"] == "root" else 0) for r in recs)
    if len(recs) != p["nodes"] or lines != want or sum(r["role"] == "root" for r in recs) != 1:
        failures.append(f"tree {p['nodes']}x{p['ranks']}: stage lines {lines}, expected every node "
                        f"mode=tree outcome=staged, the root shared_bytes={bundle}, the others 0")
for f in failures:
    print("bench smoke:", f)
print(f"bench smoke: {len(points)} points, shared {shared} requests, tree {tree} requests,",
      f"tree read {tree_bytes} bytes of {bundle}:",
      "FAILED" if failures else "ok")
sys.exit(1 if failures else 0)
