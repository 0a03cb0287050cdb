"""The README's example is what the product writes: `apply` on the bundled example vault gives
`Concepts/Reward hacking.md` exactly the `related` and `summary` the README shows."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ruamel.yaml import YAML

from ideaweave import frontmatter
from ideaweave.app import App
from ideaweave.config import Settings, replace
from ideaweave.sync import VaultSync

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_example_is_what_apply_writes(tmp_path, embedder):
    block = re.search(r"```yaml\n---\n(.*?)---\n```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S).group(1)
    shown = YAML(typ="safe").load(block)
    vault = tmp_path / "vault"
    shutil.copytree(ROOT / "examples" / "vault", vault)
    app = App(replace(Settings(), state_dir=str(tmp_path / "state"), **{"writer.defer_seconds": 0.0}), vault,
              embedder=embedder)
    try:
        app.indexer.run()
        VaultSync.for_app(app).run()
        written = frontmatter.read_managed((vault / "Concepts/Reward hacking.md").read_bytes(), ("related", "summary"))
    finally:
        app.close()
    assert written == {"related": shown["related"], "summary": shown["summary"]}
