"""The training step and its accounting: the trainer loop, rollout batches, the compute ledger, engine/trainer log-prob mismatch, and where a run writes (results store, W&B mirror)."""
