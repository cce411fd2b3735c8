"""The controller (``reconciler run``): a loop that keeps every environment equal to the
manifests repository, with its HTTP server (metrics, probes, status, webhook).

It follows the repository through ``reconciler.source.follow`` (a directory, a git remote, a
git-sync checkout, one revision per pass); ``loop`` runs the passes and keeps what lives
between them; ``status`` holds each pipeline's sync and health status (derived in ``health``,
pure) and the backoff of failed ones; ``http`` serves them; ``logs`` configures the JSON logs
and redacts secrets.
"""

from ..source.follow import CheckoutSource, DirectorySource, GitSource, SourceError
from .health import Health, SyncStatus
from .http import ControllerServer, ListenError, signature_ok
from .logs import Redactor, configure_logging
from .loop import Controller, ControllerConfig
from .status import Backoff, Status

__all__ = ["Backoff", "CheckoutSource", "Controller", "ControllerConfig", "ControllerServer",
           "DirectorySource", "GitSource", "Health", "ListenError", "Redactor", "SourceError",
           "Status", "SyncStatus", "configure_logging", "signature_ok"]
