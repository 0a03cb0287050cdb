"""Embedding text with a GGUF model run by llama.cpp.

`LlamaEmbedder` talks to llama.cpp through llama-cpp-python's low-level API rather than its
``Llama.embed``: it needs model parameters that ``Llama`` does not expose (``use_extra_bufts``, see
`llama`) and reads pooled vectors straight into numpy instead of Python lists.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from .errors import ModelError
from .llama import file_model_id, load_model, new_context
from .threads import FreeCores, ThreadController, ThreadPolicy, cpu_cores, start_threads, thread_limit

log = logging.getLogger(__name__)


class Embedder(Protocol):
    """What the rest of ideaweave needs from an embedding model."""

    model_id: str
    dim: int
    max_tokens: int

    def count_tokens(self, text: str) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dim), each row of unit length."""
        ...


@dataclass(frozen=True)
class EmbedderOptions:
    # A count, or "auto": the count that is fastest now, measured batch by batch (see `threads`),
    # at most max_threads (0: every core).
    threads: int | str = 1
    batch_tokens: int = 512
    flash_attn: bool = True
    max_threads: int = 0


def plan_batches(lengths: Sequence[int], batch_tokens: int, max_seqs: int) -> list[list[int]]:
    """Group texts (by index) into batches of at most batch_tokens tokens and max_seqs sequences.

    Texts are taken longest first, so each batch holds texts of similar length: attention runs over
    the whole packed batch, and mixing one long text with many short ones wastes most of it.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in order:
        if current and (used + lengths[i] > batch_tokens or len(current) >= max_seqs):
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += lengths[i]
    if current:
        batches.append(current)
    return batches


class LlamaEmbedder:
    """A GGUF embedding model (mean pooling) loaded once, embedding many texts per llama.cpp call."""

    def __init__(self, path: Path, options: EmbedderOptions = EmbedderOptions()):
        import llama_cpp
        from llama_cpp import _internals

        self._lock = threading.Lock()  # one llama context is not safe to use from two threads
        self.path = Path(path)
        self._model = load_model(self.path)
        model = self._model.model
        self.dim = llama_cpp.llama_model_n_embd(model)
        n_ctx_train = llama_cpp.llama_model_n_ctx_train(model)
        # A non-causal model aborts the process (GGML_ASSERT) on an input longer than n_ubatch,
        # so no input may ever exceed max_tokens: embed() truncates at the token level first.
        self.batch_tokens = min(options.batch_tokens, n_ctx_train)
        self.max_tokens = self.batch_tokens
        self.max_seqs = max(1, min(64, llama_cpp.llama_max_parallel_sequences()))
        self.controller: ThreadController | None = None
        if options.threads == "auto":
            cores = cpu_cores()
            limit = thread_limit(options.max_threads, cores)
            self.controller = ThreadController(ThreadPolicy(max_threads=limit, start=start_threads(cores, limit)))
            self._free_cores = FreeCores(cores)
            self.threads = self.controller.threads
        else:
            self.threads = int(options.threads)
        self._ctx = self._new_context(self.threads, options.flash_attn)
        if llama_cpp.llama_pooling_type(self._ctx.ctx) == llama_cpp.LLAMA_POOLING_TYPE_NONE:
            raise ModelError(f"{self.path}: the model has no pooling type; it is not a sentence-embedding model")
        self._batch = _internals.LlamaBatch(n_tokens=self.batch_tokens, embd=0, n_seq_max=self.max_seqs, verbose=False)
        self._vocab = self._model.vocab
        self.model_id = file_model_id(self.path)
        self.truncated = 0  # inputs cut at max_tokens since load
        self.batches_by_threads: Counter[int] = Counter()  # batches decoded at each thread count since load

    def _new_context(self, threads: int, flash_attn: bool):
        # One sequence per packed text, all in one batch: the batch is the whole context.
        return new_context(self._model, self.path, n_ctx=self.batch_tokens, n_batch=self.batch_tokens,
                           n_ubatch=self.batch_tokens, threads=threads, n_seq_max=self.max_seqs,
                           embeddings=True, kv_unified=True, flash_attn=flash_attn)

    @property
    def thread_mode(self) -> dict:
        """How the thread count is chosen and where it stands (for status)."""
        if self.controller is None:
            return {"mode": "fixed", "threads": self.threads}
        return {"mode": "auto", "threads": self.threads, "max_threads": self.controller.policy.max_threads,
                "trials": self.controller.trials, "switches": self.controller.switches}

    def _set_threads(self, threads: int) -> None:
        """Change the count on the live context: llama.cpp reads it at every decode, nothing reloads."""
        import llama_cpp

        if threads != self.threads:
            llama_cpp.llama_set_n_threads(self._ctx.ctx, threads, threads)
            self.threads = threads

    def tokenize(self, text: str) -> list[int]:
        """Token ids with the model's [CLS]/[SEP] (or BOS/EOS) added."""
        return self._model.tokenize(text.encode("utf-8", "replace"), add_bos=True, special=False)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def _fit(self, tokens: list[int]) -> list[int]:
        if len(tokens) <= self.max_tokens:
            return tokens
        self.truncated += 1
        # Keep the closing special token: the model was trained on [CLS] ... [SEP].
        return tokens[: self.max_tokens - 1] + tokens[-1:]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        truncated_before = self.truncated
        token_lists = [self._fit(self.tokenize(t)) for t in texts]
        if self.truncated > truncated_before:
            log.warning("%d text(s) longer than %d tokens were truncated before embedding",
                        self.truncated - truncated_before, self.max_tokens)
        with self._lock:
            for batch in plan_batches([len(t) for t in token_lists], self.batch_tokens, self.max_seqs):
                if self.controller is not None:
                    self._set_threads(self.controller.threads)
                started = time.perf_counter()
                self._decode(batch, token_lists, out)
                self.batches_by_threads[self.threads] += 1
                if self.controller is not None:
                    tokens = sum(len(token_lists[i]) for i in batch)
                    self.controller.observe(self.threads, tokens, time.perf_counter() - started, self._free_cores.now())
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def _decode(self, indices: list[int], token_lists: list[list[int]], out: np.ndarray) -> None:
        import llama_cpp

        self._batch.reset()
        for seq, i in enumerate(indices):
            self._batch.add_sequence(token_lists[i], seq, True)
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self._ctx.ctx), True)
        code = llama_cpp.llama_decode(self._ctx.ctx, self._batch.batch)
        if code != 0:
            raise ModelError(f"{self.path}: llama.cpp failed to embed a batch (code {code})")
        for seq, i in enumerate(indices):
            ptr = llama_cpp.llama_get_embeddings_seq(self._ctx.ctx, seq)
            out[i] = np.ctypeslib.as_array(ptr, shape=(self.dim,))

    def close(self) -> None:
        for part in (self._batch, self._ctx, self._model):
            part.close()
