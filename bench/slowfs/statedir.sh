#!/bin/bash
# The state directory of the slowfs mounted at $1 (pid, stats.json, log).
m=$(realpath -m "$1")
m=${m#/}
echo "${SLOWFS_STATE:-/run/slowfs}/${m//\//_}"
