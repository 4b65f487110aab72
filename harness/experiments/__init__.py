"""Running many runs: warm starts, sweeps and their executors and workers, optuna tuning, gradient-variance probes."""
