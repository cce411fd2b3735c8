"""AWS Data Pipeline's web service quotas (dp-limits.md) and the error codes with which it,
and botocore, say a caller went over them. The pacer keeps a pass under the quotas; the
embedded service enforces them when asked to."""

from __future__ import annotations

# Web service call limits per account and region (dp-limits.md): calls per second and burst.
API_QUOTAS: dict[str, tuple[float, int]] = {
    "ActivatePipeline": (1, 100), "CreatePipeline": (1, 100), "DeletePipeline": (1, 100),
    "DescribeObjects": (2, 100), "DescribePipelines": (1, 100),
    "GetPipelineDefinition": (1, 100), "ListPipelines": (1, 100),
    "PutPipelineDefinition": (1, 100), "QueryObjects": (2, 100),
    "ValidatePipelineDefinition": (1, 100), "SetStatus": (1, 100),
}

THROTTLING = frozenset({"ThrottlingException", "Throttling", "RequestLimitExceeded",
                        "TooManyRequestsException", "SlowDown", "RequestThrottled"})
