"""Domain errors: each carries a message a user can act on.

The CLI (exit code) and the API (HTTP status) translate them at the edge; expected
outcomes such as a skipped note are return values, not exceptions.
"""


class IdeaweaveError(Exception):
    """Base of every error ideaweave reports to a user."""

    @property
    def exit_code(self) -> int:
        """The CLI's exit status: one per kind of error, so that scripts can tell them apart."""
        return next((code for kind, code in EXIT_CODES.items() if isinstance(self, kind)), 1)


class ConfigError(IdeaweaveError):
    """The configuration file or an IDEAWEAVE_* variable is wrong."""


class ModelError(IdeaweaveError):
    """A model file is missing, corrupt or cannot be loaded."""


class VaultError(IdeaweaveError):
    """The vault cannot be found or read."""


class StoreError(IdeaweaveError):
    """The index in the state directory cannot be opened or is inconsistent."""


class LockError(IdeaweaveError):
    """Another ideaweave process already works on this vault."""


EXIT_CODES: dict[type[IdeaweaveError], int] = {ConfigError: 2, ModelError: 3, VaultError: 4, StoreError: 5, LockError: 6}
