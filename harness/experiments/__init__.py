"""Running many runs: the results store, warm starts, sweeps and their executors and workers, optuna tuning, the W&B mirror, gradient-variance probes."""
