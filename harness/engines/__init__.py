"""Policies and rollout engines: loading checkpoints (folders, GGUF, package files), the embedded and vision policies, our KV-cache sampler, vLLM."""
