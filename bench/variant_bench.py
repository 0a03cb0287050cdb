"""Which build of the embedding model is fastest on this CPU: what ideaweave's first start measures.

    python bench/variant_bench.py [VAULT] [--seconds 1.5] [--json]

Times the f16 and q8_0 builds of the default model on paragraphs of the vault's notes (default: the
garden benchmark vault), one thread each, taking turns over two rounds (`variants.measure`), and prints
tokens/s, the ratio to f16 in the same run, the lowest cosine to f16's vectors, the build
`embedding.variant = "auto"` would choose, the CPU and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GARDEN = Path(__file__).resolve().parents[2] / "shared/bench/vaults/garden/vault"
sys.path.insert(0, str(REPO / "daemon"))

from ideaweave import variants  # noqa: E402
from ideaweave.config import Settings  # noqa: E402
from ideaweave.embedding import EmbedderOptions, LlamaEmbedder  # noqa: E402
from ideaweave.modelfiles import checkout_models_dir  # noqa: E402
from ideaweave.vault import VaultScanner  # noqa: E402
from ideaweave.app import scan_rules  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("vault", type=Path, nargs="?", default=GARDEN)
    parser.add_argument("--seconds", type=float, default=variants.MEASURE_SECONDS, help="per build and round")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    texts = variants.vault_sample(VaultScanner(args.vault.resolve(), scan_rules(Settings())))
    reference = checkout_models_dir() / Settings().models.embedding
    paths = {v: variants.sibling(reference, v) for v in variants.VARIANTS}
    load_before = os.getloadavg()[0]
    trials = variants.measure(paths, texts, lambda p: LlamaEmbedder(p, EmbedderOptions(threads=1)), args.seconds)
    choice = variants.choose(trials)
    cpuinfo = variants.read_cpuinfo()
    report = {"cpu": variants.cpu_name(cpuinfo), "machine_key": variants.machine_key(cpuinfo), "texts": len(texts),
              "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)], **choice.as_json()}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    f16 = next(t for t in trials if t.variant == "f16")
    print(f"{report['cpu']}; {len(texts)} paragraphs of {args.vault.name}; load average {report['load_average'][0]} -> "
          f"{report['load_average'][1]}")
    print(f"{'build':8}{'tokens/s':>10}{'vs f16':>9}{'min cosine':>12}")
    for t in trials:
        print(f"{t.variant:8}{t.tokens_per_s:>10,.0f}{t.tokens_per_s / f16.tokens_per_s:>8.2f}x{t.cosine:>12.5f}")
    print(f"chosen: {choice.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
