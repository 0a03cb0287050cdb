"""ideaweave: related ideas and summaries for a markdown vault, computed on this machine."""

__version__ = "0.1.0"
