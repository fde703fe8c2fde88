#!/usr/bin/env bash
# Reruns the heterogeneity study exactly: the sweep (60 jobs, one after another), then the
# tables and plots. From the repository root:  bash experiments/heterogeneity/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m dfl.train -m +experiment=study_heterogeneity
python experiments/heterogeneity/analyze.py
