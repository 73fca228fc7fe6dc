"""The policy service: token-in/token-out inference of the current policy (vLLM or HF)."""
