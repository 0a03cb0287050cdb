"""Build the default models into models/build/ of this checkout: what `make models` runs.

The build itself is the package's (`ideaweave.modelbuild.build`, the same code `ideaweave models build`
runs for an installed copy); this wrapper only points it at the checkout's folders.
Usage: python models/build.py [--force]
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "daemon"))  # this checkout's package, even outside its virtualenv

from ideaweave.modelbuild.build import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--out", str(HERE / "build"), "--downloads", str(HERE / "download"), *sys.argv[1:]]))
