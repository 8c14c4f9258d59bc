"""Typed errors of the model layer.

Every message is built by Pakati from the provider name, the credential *name* and the model
setting: never from a key, and provider text is only quoted after redaction.
"""

from __future__ import annotations

from ..errors import PakatiError


class ProviderError(PakatiError):
    """A provider call failed; ``provider`` names it ("openai", "anthropic")."""

    kind = "provider_error"

    def __init__(self, message: str, provider: str, field: str | None = None, status: int | None = None):
        self.provider = provider
        self.status = status
        super().__init__(message, field=field)


class OptionalPackageMissingError(ProviderError):
    """The provider's SDK is not installed (the pack still loads; only these calls fail)."""

    kind = "package_missing"


class KeyMissingError(ProviderError):
    """No key is configured for the provider (planners fall back to offline on this one)."""

    kind = "key_missing"


class KeyFileInsecureError(KeyMissingError):
    """The key file is readable by others: it is ignored until it is chmod 600."""

    kind = "key_file_insecure"


class KeyRejectedError(ProviderError):
    """The provider answered 401/403 for the key."""

    kind = "key_rejected"


class RateLimitedError(ProviderError):
    """429 after the bounded retries."""

    kind = "rate_limited"


class ProviderUnavailableError(ProviderError):
    """5xx/529, timeouts or connection failures after the bounded retries."""

    kind = "unavailable"


class ProviderRefusedError(ProviderError):
    """The provider refused the request or its answer (content policy)."""

    kind = "refused"


class MalformedResponseError(ProviderError):
    """The answer could not be read (not JSON, wrong schema, undecodable image)."""

    kind = "malformed"


class ModelRetiredError(ProviderError):
    """The configured model name is retired or unknown to the provider; the message names the setting."""

    kind = "model_retired"


class ProviderRequestError(ProviderError):
    """The provider rejected the request as invalid (400/422 other than a content refusal)."""

    kind = "bad_request"


class ModelConfigError(PakatiError):
    """The models configuration file (shipped or user override) is invalid."""


class NoModelError(PakatiError):
    """No configured model can do the asked task."""
