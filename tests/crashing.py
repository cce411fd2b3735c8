"""The reconciler's command line with a crash injected: after the AWS call named by
$RECONCILER_TEST_KILL_AFTER succeeds, the process kills itself with SIGKILL, as a crash
would. The value is ``Operation[:N][~text]``: the Nth successful call of Operation (1 by
default) whose parameters contain ``text`` (``PutObject~/archive/``: the run history's
archive, not a lease renewal). The hook is botocore's own ``before-call`` / ``after-call``
events on every client the process makes, so the reconciler carries no test hook.

    python tests/crashing.py sync --once REPO
"""

from __future__ import annotations

import os
import signal
from typing import Any

import botocore.session

KILL_AFTER = "RECONCILER_TEST_KILL_AFTER"


def install(spec: str) -> None:
    wanted, _, text = spec.partition("~")
    operation, _, count = wanted.partition(":")
    needed, seen = int(count or 1), [0]

    def before_call(model: Any, params: Any, context: Any, **_: Any) -> None:
        if model.name == operation:
            context["crash-candidate"] = text in repr(params)

    def after_call(model: Any, http_response: Any, context: Any, **_: Any) -> None:
        if model.name != operation or not context.get("crash-candidate"):
            return
        if http_response is not None and http_response.status_code < 300:
            seen[0] += 1
            if seen[0] >= needed:
                os.kill(os.getpid(), signal.SIGKILL)

    create_client = botocore.session.Session.create_client

    def create_client_with_crash(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = create_client(self, *args, **kwargs)
        client.meta.events.register("before-call", before_call)
        client.meta.events.register("after-call", after_call)
        return client

    botocore.session.Session.create_client = create_client_with_crash  # type: ignore[method-assign]


if __name__ == "__main__":
    if os.environ.get(KILL_AFTER):
        install(os.environ[KILL_AFTER])
    from reconciler.cli import main

    main()
