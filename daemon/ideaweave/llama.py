"""Loading GGUF models into llama.cpp: the one place that sets the model and context parameters.

The embedder and the text model both drive llama.cpp through llama-cpp-python's low-level API rather
than its ``Llama`` class: ``Llama`` builds its model parameters inside its constructor and loads the
model at once, so there is no way to turn off the repacked/AMX CPU kernels ("extra buffer types")
that die with SIGILL on some virtual machines, and no ``kv_overrides`` key does it either.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
from pathlib import Path

from .errors import ModelError

log = logging.getLogger(__name__)

_log_callback = None


def route_llama_logs() -> None:
    """Send llama.cpp's own log lines to Python logging (debug), not to the terminal."""
    global _log_callback
    if _log_callback is not None:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback
    def forward(level, text, _user_data):
        message = text.decode("utf-8", "replace").rstrip() if text else ""
        if message:
            log.log(logging.ERROR if level == 4 else logging.DEBUG, "llama.cpp: %s", message)

    _log_callback = forward
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


def file_model_id(path: Path) -> str:
    """Identifies what a model file makes (vectors, text): name, size and a hash of the first MiB."""
    with open(path, "rb") as fh:
        head = hashlib.sha256(fh.read(1 << 20)).hexdigest()[:16]
    return f"{path.name}:{path.stat().st_size}:{head}"


def load_model(path: Path):
    """The model in `path` as a llama-cpp-python ``LlamaModel``, its log lines routed to Python logging."""
    import llama_cpp
    from llama_cpp import _internals

    route_llama_logs()
    params = llama_cpp.llama_model_default_params()
    # Repacked/AMX CPU kernels ("extra buffer types") die with SIGILL on some virtual machines that
    # advertise AMX; the plain kernels are as fast for models of these sizes.
    params.use_extra_bufts = False
    try:
        return _internals.LlamaModel(path_model=str(path), params=params, verbose=False)
    except (ValueError, OSError) as exc:
        raise ModelError(f"{path}: llama.cpp cannot load this model: {exc}") from None


def new_context(model, path: Path, *, n_ctx: int, n_batch: int, n_ubatch: int, threads: int,
                n_seq_max: int = 1, embeddings: bool = False, kv_unified: bool = False,
                flash_attn: bool | None = None):
    """A llama.cpp context over a loaded model (`path` names it in errors). flash_attn None leaves
    the choice to llama.cpp."""
    import llama_cpp
    from llama_cpp import _internals

    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch = n_ctx, n_batch, n_ubatch
    params.n_seq_max = n_seq_max
    params.n_threads = params.n_threads_batch = threads
    params.embeddings = embeddings
    params.kv_unified = kv_unified
    if flash_attn is not None:
        params.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
    try:
        return _internals.LlamaContext(model=model, params=params, verbose=False)
    except (ValueError, OSError) as exc:
        raise ModelError(f"{path}: llama.cpp cannot create a context: {exc}") from None
