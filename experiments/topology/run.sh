#!/usr/bin/env bash
# Reruns the topology study exactly: the sweep (36 jobs, one after another), then the tables
# and plots. From the repository root:  bash experiments/topology/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m dfl.train -m +experiment=study_topology
python experiments/topology/analyze.py
