"""Code that runs inside vLLM's worker processes (named by `worker_extension_cls`).

Imported by spawned workers, so it stays light. vLLM mixes this class into its
worker; the engine reaches it with `collective_rpc("outrider_reload_weights", ...)`.
"""

from __future__ import annotations


class OutriderWorkerExtension:
    """Weight reloading that also refreshes a tied output embedding.

    vLLM's `reload_weights` re-runs each layer's post-load processing, but a
    tied LM head (which shares the input embedding and is skipped by the
    loader) gets its old tensors put back: on CPU that includes a prepacked
    GEMM copy of the old embedding, so logits would still come from the old
    weights. Re-tying and re-processing the head fixes that.
    """

    def outrider_reload_weights(self, weights_path: str) -> int:
        from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead, VocabParallelEmbedding

        self.reload_weights(weights_path=weights_path)
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
