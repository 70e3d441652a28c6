#!/usr/bin/python3
"""Checks a small run of bench/run startup (tests/run-all.sh): every point ran, the environment on
slowfs cost thousands of metadata requests per rank, --pybundle with the tree at most 20 per job,
and a tree over two nodes or more read the bundle once: at most 1.01 x its bytes from the shared file
system (the nodes' prologs start apart, and the root keeps the bytes a late child needs)."""
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
tree_bytes = [p["fs"]["file_read_bytes"] for p in points if p["case"] == "tree" and p["nodes"] > 1]
if not tree_bytes or max(tree_bytes) > 1.01 * bundle:
    failures.append(f"tree: {tree_bytes} bytes read of a {bundle}-byte bundle, expected at most "
                    f"{int(1.01 * bundle)}")
for f in failures:
    print("bench smoke:", f)
print(f"bench smoke: {len(points)} points, shared {shared} requests, tree {tree} requests,",
      f"tree read {tree_bytes} bytes of {bundle}:",
      "FAILED" if failures else "ok")
sys.exit(1 if failures else 0)
