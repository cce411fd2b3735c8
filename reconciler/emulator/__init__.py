"""An embedded AWS Data Pipeline that behaves like the real service, built on moto.

``install()`` puts it in place of moto's Data Pipeline (for ``mock_aws``); ``server.py`` serves
it, with stock S3, SNS, IAM and STS, on a loopback endpoint with a control API. What it
implements, and where each behaviour is documented, is in docs/emulator.md.
"""

from .clock import CONTROLS, Outcome
from .service import all_backends, install

__all__ = ["CONTROLS", "Outcome", "all_backends", "install"]
