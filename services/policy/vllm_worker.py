"""Code that runs inside vLLM's worker processes (named by `worker_extension_cls`).

Imported by spawned workers, so it stays light. vLLM mixes this class into its
worker; the engine reaches it with `collective_rpc("outrider_load_weights", ...)`.
"""

from __future__ import annotations

from collections.abc import Iterator


def _tensors(files: list[str]) -> Iterator[tuple[str, object]]:
    """(name, tensor) of safetensors files, one tensor at a time (the loader copies each
    into its parameter, so a whole second copy of the model never exists)."""
    from safetensors import safe_open

    for file in files:
        with safe_open(file, "pt") as handle:
            for name in handle.keys():
                yield name, handle.get_tensor(name)


class OutriderWorkerExtension:
    """Weight reloading in place, which also refreshes a tied output embedding.

    vLLM's layerwise `reload_weights` re-runs each layer's post-load processing
    (on CPU: repacking the GEMM weights; loading into the parameters directly is
    not possible there, since packing drops the plain weight tensors), but a
    tied LM head (which shares the input embedding and is skipped by the
    loader) gets its old tensors put back: on CPU that includes a prepacked
    GEMM copy of the old embedding, so logits would still come from the old
    weights. Re-tying and re-processing the head fixes that.
    """

    def outrider_load_weights(self, files: list[str]) -> int:
        """Reload from safetensors files through an iterator: no model-loader lookup, and
        the engine's `model_config.model` keeps naming the served model, not a staging file."""
        self.reload_weights(weights_iterator=_tensors(files))
        return self._outrider_retie()

    def outrider_reload_weights(self, weights_path: str) -> int:
        """Reload from an HF folder through vLLM's model loader (`*.bin` checkpoints)."""
        self.reload_weights(weights_path=weights_path)
        return self._outrider_retie()

    def _outrider_retie(self) -> int:
        from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead, VocabParallelEmbedding

        model = self.model_runner.get_model()
        embeddings = [m for m in model.modules() if type(m) is VocabParallelEmbedding]
        tied = bool(getattr(model.config, "tie_word_embeddings", False))
        refreshed = 0
        for module in model.modules():
            if isinstance(module, ParallelLMHead) and tied and len(embeddings) == 1:
                module.weight = embeddings[0].weight
                module.quant_method.process_weights_after_loading(module)
                refreshed += 1
        return refreshed
