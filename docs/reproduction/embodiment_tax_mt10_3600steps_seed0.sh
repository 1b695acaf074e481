#!/usr/bin/env bash
# Indicative hand run (not the study's table): the mt10 preset at twice the action-step budget (3600),
# seed 0, both kinds side by side, from the same VLM and data (symlinked), then the report.
cd "$(dirname "$0")/../.."
# The same VLM, data and untrained floor as the study's mt10 runs (runs/study/{full,mt10} must exist):
mkdir -p runs/s25/mt10_long/mt10
ln -sfn "$PWD/runs/study/full" runs/s25/mt10_long/full
ln -sfn "$PWD/runs/study/mt10/data" runs/s25/mt10_long/mt10/data
ln -sfn "$PWD/runs/study/mt10/reference_untrained" runs/s25/mt10_long/mt10/reference_untrained
S="nice -n 10 .venv/bin/python benchmarks/embodiment_tax.py --preset mt10 --runs-dir runs/s25/mt10_long --results runs/s25/mt10_long/results --action-steps 3600 --seeds 0"
$S --kinds uam > runs/s25/mt10_long_uam.log 2>&1 &
$S --kinds single_stream > runs/s25/mt10_long_ss.log 2>&1
wait
$S > runs/s25/mt10_long_report.log 2>&1
echo LONG-DONE
