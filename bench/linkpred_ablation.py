"""Run the link-prediction benchmark on ideaweave's `related` with each evidence component ablated.

    python bench/linkpred_ablation.py [VAULT] [--linkpred PATH] [--out DIR] [--only NAME,...]

Each row is one run of linkpred.py (--external ideaweave related ...) with settings changed through
IDEAWEAVE_* variables; the masked vault and its index are shared, so only the first run embeds.
Prints a markdown table (method, recall@10, MRR, nDCG@10, seconds) for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LINKPRED = REPO.parent / "shared" / "bench" / "linkpred.py"
DEFAULT_VAULT = REPO.parent / "shared" / "bench" / "vaults" / "garden" / "vault"
COMPONENTS = ("emb", "chunk", "bm25", "title", "aa", "back", "nbr")

VARIANTS: list[tuple[str, dict[str, str]]] = [
    ("ideaweave (default: calibrated weights)", {}),
    ("fixed default weights", {"IDEAWEAVE_RELATE_WEIGHTS": "fixed"}),
]
VARIANTS += [(f"fixed, without {c}", {"IDEAWEAVE_RELATE_WEIGHTS": "fixed", f"IDEAWEAVE_RELATE_{c.upper()}_WEIGHT": "0"})
             for c in COMPONENTS]
VARIANTS += [(f"{c} alone", {"IDEAWEAVE_RELATE_WEIGHTS": "fixed",
                             **{f"IDEAWEAVE_RELATE_{o.upper()}_WEIGHT": ("1" if o == c else "0") for o in COMPONENTS}})
             for c in COMPONENTS]


def run(name: str, env_changes: dict[str, str], args, state: str) -> dict:
    env = dict(os.environ, XDG_STATE_HOME=state, **env_changes)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    tag = "iw-" + "".join(ch if ch.isalnum() else "-" for ch in name.lower())[:40]
    cmd = [sys.executable, str(args.linkpred), str(args.vault), "--rankers", "random", "--out", args.out,
           "--external", "ideaweave related --vault {vault} --json -k {k} {notes...}", "--external-name", tag]
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    vault_name = args.vault.parent.name if args.vault.name == "vault" else args.vault.name
    result = json.loads((Path(args.out) / f"{vault_name}.{tag}.json").read_text())
    return {"method": name, "recall@10": result["recall@k"], "mrr": result["mrr"], "ndcg@10": result["ndcg@k"],
            "seconds": result["runtime_s"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vault", nargs="?", type=Path, default=DEFAULT_VAULT)
    parser.add_argument("--linkpred", type=Path, default=DEFAULT_LINKPRED)
    parser.add_argument("--out", default=tempfile.mkdtemp(prefix="linkpred-results-"))
    parser.add_argument("--state", default=tempfile.mkdtemp(prefix="linkpred-state-"))
    parser.add_argument("--only", help="comma list of method names to run")
    args = parser.parse_args()
    chosen = [v for v in VARIANTS if not args.only or v[0] in args.only.split(",")]
    print("| method | recall@10 | MRR | nDCG@10 | seconds |\n|---|---|---|---|---|", flush=True)
    for name, env_changes in chosen:
        row = run(name, env_changes, args, args.state)
        print(f"| {row['method']} | {row['recall@10']:.3f} | {row['mrr']:.3f} | {row['ndcg@10']:.3f} | {row['seconds']:.1f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
