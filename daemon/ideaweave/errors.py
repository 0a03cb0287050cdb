"""Domain errors: each carries a message a user can act on.

The CLI (exit code) and the API (HTTP status) translate them at the edge; expected
outcomes such as a skipped note are return values, not exceptions.
"""


class IdeaweaveError(Exception):
    """Base of every error ideaweave reports to a user."""

    exit_code = 1


class ConfigError(IdeaweaveError):
    """The configuration file or an IDEAWEAVE_* variable is wrong."""

    exit_code = 2


class ModelError(IdeaweaveError):
    """A model file is missing, corrupt or cannot be loaded."""

    exit_code = 3


class VaultError(IdeaweaveError):
    """The vault cannot be found or read."""

    exit_code = 4


class StoreError(IdeaweaveError):
    """The index in the state directory cannot be opened or is inconsistent."""

    exit_code = 5


class LockError(IdeaweaveError):
    """Another ideaweave process already works on this vault."""

    exit_code = 6
