#!/usr/bin/env bash
# Indicative hand run (not the study's table): the mt10 preset at twice the action-step budget (3600),
# seed 0, both kinds side by side, from the same VLM and data (symlinked), then the report.
cd /work/main
S="nice -n 10 .venv/bin/python benchmarks/embodiment_tax.py --preset mt10 --runs-dir runs/s25/mt10_long --results runs/s25/mt10_long/results --action-steps 3600 --seeds 0"
$S --kinds uam > runs/s25/mt10_long_uam.log 2>&1 &
$S --kinds single_stream > runs/s25/mt10_long_ss.log 2>&1
wait
$S > runs/s25/mt10_long_report.log 2>&1
echo LONG-DONE
