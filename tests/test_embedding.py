import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ideaweave.embedding import EmbedderOptions, LlamaEmbedder, plan_batches
from ideaweave.errors import ModelError
from ideaweave.threads import ThreadController, ThreadPolicy

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "minilm_reference.json").read_text(encoding="utf-8"))


def test_f16_matches_sentence_transformers(embedder):
    vectors = embedder.embed(REFERENCE["sentences"])
    reference = np.array(REFERENCE["vectors"], dtype=np.float32)
    cosines = np.sum(vectors * reference, axis=1)
    assert cosines.min() >= 0.999, dict(zip(REFERENCE["sentences"], cosines.round(5)))


def test_q8_matches_sentence_transformers(embedder_q8):
    vectors = embedder_q8.embed(REFERENCE["sentences"])
    reference = np.array(REFERENCE["vectors"], dtype=np.float32)
    assert np.sum(vectors * reference, axis=1).min() >= 0.99


@pytest.mark.parametrize("index", range(len(REFERENCE["sentences"])))
def test_tokenizer_matches_original(embedder, index):
    assert embedder.tokenize(REFERENCE["sentences"][index]) == REFERENCE["token_ids"][index]


def test_vectors_are_unit_length_and_order_preserved(embedder):
    texts = ["short", "a much longer text " * 30, "medium length text about alignment", "short"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (4, embedder.dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Packing sorts by length internally: the output must still follow the input order.
    alone = np.vstack([embedder.embed([t]) for t in texts])
    # Batched and single results differ only by float rounding (f16 sums in another order).
    assert np.sum(vectors * alone, axis=1).min() > 0.9999
    assert float(vectors[0] @ vectors[3]) > 0.9999
    assert float(vectors[0] @ vectors[1]) < 0.99


def test_empty_input(embedder):
    assert embedder.embed([]).shape == (0, embedder.dim)


def test_text_longer_than_context_is_truncated_not_fatal(embedder, caplog):
    long_text = "alignment " * 3000
    before = embedder.truncated
    vectors = embedder.embed([long_text, "a short one"])
    assert embedder.truncated == before + 1
    assert np.isfinite(vectors).all() and vectors.shape == (2, embedder.dim)
    assert "truncated" in caplog.text
    # Truncation keeps the first tokens: the vector equals the one of the leading part.
    head = embedder.embed(["alignment " * 510])
    assert float(vectors[0] @ head[0]) > 0.99


def test_plan_batches_respects_limits():
    lengths = [500, 10, 10, 300, 200, 12, 512, 1]
    batches = plan_batches(lengths, batch_tokens=512, max_seqs=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert sum(lengths[i] for i in batch) <= 512 and len(batch) <= 3


def test_missing_or_broken_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="cannot load"):
        broken = tmp_path / "broken.gguf"
        broken.write_bytes(b"GGUF" + b"\0" * 100)
        LlamaEmbedder(broken)


def test_q8_survives_in_a_fresh_process():
    # The SIGILL of the AMX kernels kills the whole process, so it can only be seen from outside.
    code = (
        "from ideaweave.embedding import LlamaEmbedder, EmbedderOptions\n"
        "from ideaweave.modelfiles import checkout_models_dir\n"
        "e = LlamaEmbedder(checkout_models_dir() / 'all-MiniLM-L6-v2.q8_0.gguf', EmbedderOptions(threads=2))\n"
        "print(e.embed(['a quantized model on every CPU kernel'] * 40).shape)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(40, 384)" in result.stdout


def test_auto_threads_change_the_count_on_the_live_context_and_embed_the_same(embedder):
    import llama_cpp

    sentences = REFERENCE["sentences"]
    texts = [" ".join(sentences[(i + j) % len(sentences)] for j in range(6)) + f" ({i})" for i in range(80)]
    auto = LlamaEmbedder(embedder.path, EmbedderOptions(threads="auto", max_threads=2))
    try:
        assert auto.thread_mode["mode"] == "auto" and 1 <= auto.threads <= 2
        # Start at two with a trial due at once, so the run must decode at both counts whatever the
        # machine's load (a trial of one fewer never waits for a free core).
        auto.controller = ThreadController(ThreadPolicy(max_threads=2, start=2, first_probe_seconds=0.0))
        vectors = auto.embed(texts)
        assert auto.controller.trials >= 1 and set(auto.batches_by_threads) == {1, 2}
        assert llama_cpp.llama_n_threads(auto._ctx.ctx) == auto.threads
    finally:
        auto.close()
    reference = embedder.embed(texts)
    assert np.sum(vectors * reference, axis=1).min() > 0.9999
