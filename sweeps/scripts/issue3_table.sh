#!/usr/bin/env bash
# The four-methods comparison on the embedded default: 6 methods x 3 seeds, 100k rollouts each, arithmetic.
# (Sequential; the sweep runner of the sweeps issue will replace this script.)
set -euo pipefail
cd "$(dirname "$0")/../.."
for seed in 0 1 2; do
  for algo in grpo dapo popo sgpo pods maxpo; do
    .venv/bin/rlvr run -q algo=$algo task=arithmetic seed=$seed budget.amount=100000 budget.eval_every=10000 \
      out_dir=runs/issue3 name=$algo-s$seed wandb.mode=offline "$@" | tail -1 | sed "s/^/$algo s$seed: /"
  done
done
