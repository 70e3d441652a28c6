#!/usr/bin/python3
"""Checks a small run of bench/run startup (tests/run-all.sh): every point ran, the environment on
slowfs cost thousands of metadata requests per rank, --pybundle with the tree at most 20 per job."""
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
for f in failures:
    print("bench smoke:", f)
print(f"bench smoke: {len(points)} points, shared {shared} requests, tree {tree} requests:",
      "FAILED" if failures else "ok")
sys.exit(1 if failures else 0)
