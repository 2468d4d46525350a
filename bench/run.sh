#!/usr/bin/env bash
# Runs the k1s benchmarks and prints one markdown table.
#
#   bench/run.sh                 # everything (api, pod, workload, kubelet, oci)
#   bench/run.sh api             # API server only
#   bench/run.sh api:create,list # a subset of the API measures
#   bench/run.sh pod             # pod start-up (n/a until a node agent runs)
#   bench/run.sh workload        # Deployment, rollout, scheduler, node loss
#   bench/run.sh workload:schedule,nodeloss   # a subset (deploy, rollout, schedule, nodeloss)
#   bench/run.sh kubelet         # probe load and liveness restarts (kubelet:liveness, kubelet:probes)
#   bench/run.sh oci             # oci runtime: pod start-up, per-pod memory, image import (oci:import,memory,single,burst)
#
# Extra flags per program: APIBENCH_FLAGS="-objects 500" PODBENCH_FLAGS="-burst 50"
# WORKLOADBENCH_FLAGS="-sched-pods 500" KUBELETBENCH_FLAGS="-pods 200"
# OCIBENCH_FLAGS="-mem-pods 100 -image-mb 500".
# Progress goes to stderr, the table to stdout. Uses bin/k1s (runs
# `make build` only if it is missing); the benchmark programs are compiled
# into a temporary directory.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

suites=()
for a in "$@"; do
	case "$a" in
	all) suites+=(api pod workload kubelet oci) ;;
	api | api:* | pod | workload | workload:* | kubelet | kubelet:* | oci | oci:*) suites+=("$a") ;;
	-h | --help)
		sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "bench/run.sh: unknown suite '$a' (want api[:MEASURES], pod, workload[:MEASURES], kubelet[:MEASURES], oci[:MEASURES] or all)" >&2
		exit 2
		;;
	esac
done
[ ${#suites[@]} -eq 0 ] && suites=(api pod workload kubelet oci)

if [ ! -x bin/k1s ]; then
	echo "bench/run.sh: bin/k1s missing, running make build" >&2
	make build >&2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/k1s-bench-bin.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/" ./bench/cmd/apibench ./bench/cmd/podbench ./bench/cmd/workloadbench ./bench/cmd/kubeletbench ./bench/cmd/ocibench
# A private copy: other sessions may rebuild bin/k1s while this runs, and
# servers of other users mapping the same file would make PSS vary.
cp -p bin/k1s "$tmp/k1s"
# kubeletbench -exec-probe stamp: the light exec probe (a static C program).
if command -v cc >/dev/null 2>&1; then
	cc -O2 -static -o "$tmp/stamp" bench/tools/stamp.c 2>/dev/null || cc -O2 -o "$tmp/stamp" bench/tools/stamp.c || true
fi

cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo 2>/dev/null || true)
echo "k1s benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), bin/k1s built $(date -u -r "$tmp/k1s" +%Y-%m-%dT%H:%MZ), HEAD $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "machine: ${cpu:-unknown CPU}, $(nproc) CPUs, ${mem:-? GiB} RAM, $(uname -sr), load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '| measure | value | target |\n|---|---|---|\n'

status=0
for s in "${suites[@]}"; do
	case "$s" in
	api) "$tmp/apibench" -k1s "$tmp/k1s" -header=false ${APIBENCH_FLAGS:-} || status=1 ;;
	api:*) "$tmp/apibench" -k1s "$tmp/k1s" -header=false -only "${s#api:}" ${APIBENCH_FLAGS:-} || status=1 ;;
	pod) "$tmp/podbench" -k1s "$tmp/k1s" -header=false ${PODBENCH_FLAGS:-} || status=1 ;;
	workload) "$tmp/workloadbench" -k1s "$tmp/k1s" -header=false ${WORKLOADBENCH_FLAGS:-} || status=1 ;;
	workload:*) "$tmp/workloadbench" -k1s "$tmp/k1s" -header=false -only "${s#workload:}" ${WORKLOADBENCH_FLAGS:-} || status=1 ;;
	kubelet) "$tmp/kubeletbench" -k1s "$tmp/k1s" -header=false ${KUBELETBENCH_FLAGS:-} || status=1 ;;
	kubelet:*) "$tmp/kubeletbench" -k1s "$tmp/k1s" -header=false -only "${s#kubelet:}" ${KUBELETBENCH_FLAGS:-} || status=1 ;;
	oci) "$tmp/ocibench" -k1s "$tmp/k1s" -header=false ${OCIBENCH_FLAGS:-} || status=1 ;;
	oci:*) "$tmp/ocibench" -k1s "$tmp/k1s" -header=false -only "${s#oci:}" ${OCIBENCH_FLAGS:-} || status=1 ;;
	esac
done
echo
echo "load average at end $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
