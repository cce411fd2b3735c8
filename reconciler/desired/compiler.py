"""Compiles one manifest for one environment into a :class:`CompiledPipeline`.

Pure: the repository arrives as a snapshot of bytes, the schedule's anchor date as an argument.
Object ids derive from step names (``load_staging``, ``load_staging_output``...), and the shared
objects have fixed ids (``Default``, ``DefaultSchedule``, ``Ec2Instance``, ``EmrCluster``,
``FailureAlarm``, ``RedshiftDatabase``...), so adding or reordering steps leaves the other
objects' ids alone. Files that steps reference become artifacts with content-addressed S3 keys.

Whatever a step type raises becomes a located problem of its pipeline: a ``CompileError`` says
what is wrong with the step, anything else is a bug of the step type, reported at the step so
the other pipelines compile.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..errors import CompileError, Problem, did_you_mean
from ..service.model import check_definition
from ..snapshot import Snapshot
from .builder import CompileOptions, PipelineBuilder, parameter_id
from .config import EnvConfig
from .definition import CompiledPipeline, Field, Parameter, PipelineObject, Ref, make_object
from .manifest import Manifest, StepSpec
from .steps import StepContext, StepResult, StepType

__all__ = ["CompileOptions", "compile_manifest", "parse_load_time"]

# Dataduct's frequencies (its schedule.py), plus monthly and on-demand.
FREQUENCIES: dict[str, tuple[str | None, int | None]] = {
    "one-time": ("15 minutes", 1),
    "hourly": ("1 hours", None), "1-hour": ("1 hours", None), "2-hours": ("2 hours", None),
    "3-hours": ("3 hours", None), "4-hours": ("4 hours", None), "6-hours": ("6 hours", None),
    "8-hours": ("8 hours", None), "12-hours": ("12 hours", None),
    "daily": ("1 days", None), "1-day": ("1 days", None), "2-days": ("2 days", None),
    "3-days": ("3 days", None), "4-days": ("4 days", None), "5-days": ("5 days", None),
    "6-days": ("6 days", None),
    "weekly": ("1 weeks", None), "1-week": ("1 weeks", None), "2-weeks": ("2 weeks", None),
    "monthly": ("1 months", None),
    "on-demand": (None, None),
}
DEFAULT_LOAD_TIME = (1, 0)  # Dataduct's DAILY_LOAD_TIME default: 01:00 UTC
DEFAULT_TERMINATE_AFTER = "6 Hours"
# Tags the reconciler itself puts on every pipeline (reconciler.live.model.MANAGED_TAGS; a
# test keeps the two in step): AWS allows 10, so etl.TAGS gets what is left.
RESERVED_TAGS = 7
MAX_TAGS = 10  # per pipeline (dp-limits.md)
_LOAD_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")

StepLookup = Callable[[str], StepType | None]


def parse_load_time(value: Any) -> tuple[int, int] | None:
    """``"01:00"`` or an hour ``1`` -> (1, 0); None when it is not a time of day."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return (value, 0) if 0 <= value <= 23 else None
    match = _LOAD_TIME.match(str(value).strip())
    if not match:
        return None
    hour, minute = int(match.group(1)), int(match.group(2))
    return (hour, minute) if hour < 24 and minute < 60 else None


def compile_manifest(
    manifest: Manifest,
    config: EnvConfig,
    snapshot: Snapshot,
    steps: StepLookup,
    options: CompileOptions,
    problems: list[Problem],
    reads: dict[str, str] | None = None,
) -> CompiledPipeline | None:
    """Compile one checked manifest for one environment; None (with problems) on errors.
    ``reads`` receives every repository file the build read, with its hash."""
    before = len(problems)
    builder = PipelineBuilder(manifest, config, snapshot, options, problems)
    if reads is not None:
        builder.reads = reads
    doc = manifest.document
    try:
        _pipeline_objects(builder)
    except CompileError as exc:
        problems.append(Problem(exc.location or doc.locate((exc.key,) if exc.key else ()),
                                str(exc), hint=exc.hint, code="compile"))
        return None
    results: dict[str, StepResult] = {}
    for spec in manifest.steps:
        results[spec.name] = _compile_step(builder, spec, steps, results, problems)
    if len(problems) > before:
        return None
    _wire_phases(builder, results)
    try:
        _resources(builder)
    except CompileError as exc:
        key = exc.key or "ec2_resource_config"
        problems.append(Problem(doc.locate((key,) if key in manifest.data else ()), str(exc),
                                hint=exc.hint, code="compile"))
        return None
    _variables(builder)
    tags, tag_problems = tags_of(manifest, config, MAX_TAGS - RESERVED_TAGS)
    problems.extend(tag_problems)
    compiled = CompiledPipeline(
        name=manifest.name,
        environment=config.environment,
        manifest=manifest.path,
        description=manifest.data.get("description"),
        objects=tuple(sorted(builder.objects.values(), key=lambda o: o.id)),
        parameters=tuple(sorted(builder.parameters.values(), key=lambda p: p.id)),
        parameter_values=tuple(sorted(builder.parameter_values.items())),
        secrets=tuple(sorted(builder.secrets.values(), key=lambda s: s.parameter_id)),
        artifacts=tuple(sorted(builder.artifacts.values(), key=lambda a: a.path)),
        aws_name=pipeline_name_in_aws(manifest, config),
        tags=tuple(sorted(tags.items())),
        suspend=bool(manifest.data.get("suspend", False)),
        replace_allowed=manifest.data.get("replace") == "allowed",
        previous_names=tuple(manifest.data.get("previous_names") or ()),
        qa_wheelhouse=builder.qa_wheelhouse,
        step_activities=tuple((spec.name, tuple(results[spec.name].activities))
                              for spec in manifest.steps),
    )
    _check_service_model(compiled, manifest, options, problems)
    if any(p.severity == "error" for p in problems[before:]):
        return None
    return compiled


def _compile_step(builder: PipelineBuilder, spec: StepSpec, steps: StepLookup,
                  results: dict[str, StepResult], problems: list[Problem]) -> StepResult:
    """One step; its errors (and any exception of its step type) become problems."""
    step_type = steps(spec.step_type)
    if step_type is None:  # parse_manifest refused it already; never reached
        return StepResult()
    if (spec.step_type == "pipeline-dependencies"
            and builder.config.get("etl", "DEPENDENCY_OVERRIDE", False)):
        return StepResult()
    ctx = StepContext(builder, spec, step_type, results)
    try:
        result = step_type.compile(ctx)
        if not isinstance(result, StepResult):
            raise TypeError(f"compile() returned {type(result).__name__}, not a StepResult")
        result.activities = result.activities or list(ctx.activities)
        return result
    except CompileError as exc:
        path = (*spec.key_path, exc.key) if exc.key else spec.key_path
        location = exc.location or (spec.locate(exc.key) if exc.key else spec.location)
        hint = exc.hint
        if exc.location is not None and exc.location.file != spec.location.file:
            hint = f"{hint}; " if hint else ""
            hint += f"used by step '{spec.name}' at {spec.location}"
        problems.append(Problem(location, str(exc), path, hint=hint, code="compile"))
    except Exception as exc:  # a bug in a step type must not stop the other pipelines
        problems.append(Problem(
            spec.location, f"step '{spec.name}' ({spec.step_type}) could not be compiled: "
            f"{type(exc).__name__}: {exc}", spec.key_path,
            hint=f"this is a bug in the step type '{spec.step_type}'; the other pipelines "
                 "are not affected", code="internal"))
    return StepResult()


def _frequency(builder: PipelineBuilder) -> tuple[str | None, int | None]:
    data, config = builder.manifest.data, builder.config
    frequency = config.get("etl", "FREQUENCY_OVERRIDE") or data.get("frequency", "one-time")
    if frequency not in FREQUENCIES:
        raise CompileError(f"frequency '{frequency}' is not one of {', '.join(FREQUENCIES)}",
                           "frequency", hint=did_you_mean(str(frequency), FREQUENCIES))
    return FREQUENCIES[frequency]


def _load_time(builder: PipelineBuilder) -> tuple[int, int]:
    manifest, config = builder.manifest, builder.config
    written = manifest.data.get("load_time")
    if written is None:
        default = config.get("etl", "DAILY_LOAD_TIME")
        if default is None:
            return DEFAULT_LOAD_TIME
        parsed = parse_load_time(default)
        if parsed is None:
            raise CompileError(f"etl.DAILY_LOAD_TIME '{default}' is not an hour (0-23) or "
                               "HH:MM", hint="write 1 or 01:00 (UTC)",
                               location=config.locate("etl", "DAILY_LOAD_TIME"))
        return parsed
    parsed = parse_load_time(written)
    if parsed is None:
        raise CompileError(f"load_time '{written}' is not a time of day HH:MM", "load_time",
                           hint="write it as 01:00 (UTC)")
    return parsed


def pipeline_name_in_aws(manifest: Manifest, config: EnvConfig) -> str:
    """The name Dataduct gives a pipeline: ``etl.NAME_PREFIX`` + ``_`` + its name."""
    prefix = config.get("etl", "NAME_PREFIX")
    return f"{prefix}_{manifest.name}" if prefix else manifest.name


def _log_uri(builder: PipelineBuilder) -> str:
    logs = str(builder.config.get("etl", "DP_PIPELINE_LOG_PATH", "logs")).strip("/") or "logs"
    return f"{builder.s3_base}/{logs}/{builder.manifest.name}/"


def _pipeline_objects(builder: PipelineBuilder) -> None:
    """Default, DefaultSchedule and FailureAlarm."""
    manifest, config = builder.manifest, builder.config
    period, occurrences = _frequency(builder)
    hour, minute = _load_time(builder)
    default: dict[str, Any] = {
        "scheduleType": "ondemand" if period is None else "cron",
        "failureAndRerunMode": "CASCADE",
        "role": config.get("etl", "ROLE", "DataPipelineDefaultRole"),
        "resourceRole": config.get("etl", "RESOURCE_ROLE", "DataPipelineDefaultResourceRole"),
        "pipelineLogUri": _log_uri(builder),
    }
    if period is not None:
        start = f"{builder.options.start_date.isoformat()}T{hour:02d}:{minute:02d}:00"
        builder.add(make_object("DefaultSchedule", type="Schedule", period=period,
                                startDateTime=start, occurrences=occurrences))
        default["schedule"] = Ref("DefaultSchedule")
    builder.add(make_object("Default", **default))
    topic = manifest.data.get("topic_arn") or config.get("etl", "SNS_TOPIC_ARN_FAILURE")
    if topic:
        name = pipeline_name_in_aws(manifest, config)
        builder.add(make_object(
            "FailureAlarm", type="SnsAlarm", topicArn=topic,
            subject=f"Dataduct pipeline {name} failed: #{{node.name}}",
            message="#{node.name} failed at #{node.@actualStartTime}: #{node.errorMessage}",
            role=config.get("etl", "ROLE", "DataPipelineDefaultRole")))


def _variables(builder: PipelineBuilder) -> None:
    """The manifest's ``variables`` as parameters with values (``my_var`` -> ``myMyVar``)."""
    for name, value in sorted((builder.manifest.data.get("variables") or {}).items()):
        pid = parameter_id(name)
        kind = "Integer" if isinstance(value, int) and not isinstance(value, bool) else (
            "Double" if isinstance(value, float) else "String")
        builder.parameters[pid] = Parameter(pid, kind, f"variables.{name}")
        builder.parameter_values[pid] = (str(value).lower() if isinstance(value, bool)
                                         else str(value))


def _check_service_model(compiled: CompiledPipeline, manifest: Manifest,
                         options: CompileOptions, problems: list[Problem]) -> None:
    api = compiled.api_form()
    for finding in check_definition(api["pipelineObjects"], api["parameterObjects"],
                                    api["parameterValues"], max_objects=options.max_objects):
        obj = compiled.object(finding.object_id) if finding.object_id else None
        location = obj.origin if obj is not None and obj.origin else manifest.document.locate(())
        problems.append(Problem(location, f"AWS Data Pipeline would refuse this: "
                                f"{finding.format()}" if finding.severity == "error" else
                                f"AWS Data Pipeline would warn: {finding.format()}",
                                severity=finding.severity, code="service-model"))


def _wire_phases(builder: PipelineBuilder, results: dict[str, StepResult]) -> None:
    """Bootstrap steps run before every activity on their resource; teardown steps run after
    every other activity."""
    steps = builder.manifest.steps
    objects = builder.objects

    def add_dependency(activity_id: str, dep: str) -> None:
        obj = objects[activity_id]
        if any(f.key == "dependsOn" and f.value == dep for f in obj.fields):
            return
        fields = tuple(sorted((*obj.fields, Field("dependsOn", dep, True)),
                              key=lambda f: f.key))
        objects[activity_id] = PipelineObject(obj.id, obj.name, fields, obj.origin)

    for resource in ("ec2", "emr"):
        chain = [a for s in steps if s.phase == f"bootstrap-{resource}"
                 for a in results[s.name].activities]
        if not chain:
            continue
        runs_on = "Ec2Instance" if resource == "ec2" else "EmrCluster"
        for spec in steps:
            if spec.phase not in ("main", "teardown"):
                continue
            for activity_id in results[spec.name].activities:
                if objects[activity_id].get("runsOn") == runs_on:
                    add_dependency(activity_id, chain[-1])
    teardown_first = [results[s.name].activities[0] for s in steps
                      if s.phase == "teardown" and results[s.name].activities]
    if teardown_first:
        main = [a for s in steps if s.phase == "main" for a in results[s.name].activities]
        depended = {f.value for a in main for f in objects[a].fields if f.key == "dependsOn"}
        for leaf in [a for a in main if a not in depended]:
            add_dependency(teardown_first[0], leaf)


def _security_groups(ec2: dict[str, Any], over: dict[str, Any]) -> tuple[list, list]:
    groups = over.get("security_groups") or (
        [over["security_group"]] if over.get("security_group") else None)
    if groups is None and ec2.get("SECURITY_GROUP"):
        groups = [ec2["SECURITY_GROUP"]]
    ids = [g for g in groups or [] if str(g).startswith("sg-")] + list(
        ec2.get("SECURITY_GROUP_IDS") or [])
    names = [g for g in groups or [] if not str(g).startswith("sg-")]
    return names, ids


def _resources(builder: PipelineBuilder) -> None:
    config, data = builder.config, builder.manifest.data
    key_pair = config.get("etl", "KEY_PAIR")
    if "ec2" in builder.uses_resource:
        ec2 = config.section("ec2")
        over = data.get("ec2_resource_config") or {}
        names, ids = _security_groups(ec2, over)
        builder.add(make_object(
            "Ec2Instance", type="Ec2Resource",
            instanceType=over.get("instance_type", ec2.get("INSTANCE_TYPE", "m1.large")),
            imageId=over.get("ami", ec2.get("ETL_AMI")),
            securityGroups=names or None, securityGroupIds=ids or None,
            subnetId=over.get("subnet_id", ec2.get("SUBNET_ID")),
            keyPair=over.get("key_pair", key_pair),
            terminateAfter=over.get("terminate_after",
                                    ec2.get("TERMINATE_AFTER", DEFAULT_TERMINATE_AFTER)),
            actionOnTaskFailure="terminate"))
    if "emr" in builder.uses_resource:
        builder.add(_emr_cluster(config, data.get("emr_cluster_config") or {}, key_pair))


def _emr_cluster(config: EnvConfig, over: dict[str, Any], key_pair: Any) -> PipelineObject:
    emr = config.section("emr")
    bootstrap = over.get("bootstrap")
    release = over.get("release_label", emr.get("RELEASE_LABEL"))
    ami = None if release else over.get("ami_version", emr.get("CLUSTER_AMI"))
    tasks = over.get("task_instances")
    return make_object(
        "EmrCluster", type="EmrCluster",
        masterInstanceType=over.get("master_instance_size",
                                    emr.get("MASTER_INSTANCE_TYPE", "m1.large")),
        coreInstanceType=over.get("instance_size", emr.get("CORE_INSTANCE_TYPE", "m1.large")),
        coreInstanceCount=over.get("num_instances", emr.get("NUM_CORE_INSTANCES", 1)),
        taskInstanceType=over.get("task_instance_size", emr.get("TASK_INSTANCE_TYPE"))
        if tasks else None,
        taskInstanceCount=tasks,
        taskInstanceBidPrice=over.get("task_bid_price", emr.get("TASK_INSTANCE_BID_PRICE"))
        if tasks else None,
        amiVersion=ami, releaseLabel=release,
        applications=over.get("applications"),
        bootstrapAction=[bootstrap] if isinstance(bootstrap, str) else bootstrap,
        keyPair=key_pair,
        terminateAfter=over.get("terminate_after",
                                emr.get("CLUSTER_TIMEOUT", DEFAULT_TERMINATE_AFTER)))


def tags_of(manifest: Manifest, config: EnvConfig, free: int) -> tuple[dict[str, str],
                                                                       list[Problem]]:
    """Dataduct's ``etl.TAGS`` for this pipeline: ``NAME: {string: VALUE}`` or
    ``NAME: {variable: KEY}`` (a key of the manifest, such as ``name``), within the ``free``
    tags AWS's limit of 10 leaves next to the reconciler's own."""
    spec = config.get("etl", "TAGS") or {}
    tags: dict[str, str] = {}
    problems: list[Problem] = []
    where = config.locate("etl", "TAGS")
    for key, value in spec.items():
        if not isinstance(value, dict) or len(value) != 1 or not (
                {"string", "variable"} & set(value)):
            problems.append(Problem(config.locate("etl", "TAGS", key),
                                    f"tag {key} must be {{string: VALUE}} or "
                                    "{variable: KEY}", ("etl", "TAGS", key), code="config"))
            continue
        if "string" in value:
            text = value["string"]
        else:
            text = pipeline_name_in_aws(manifest, config) if value["variable"] == "name" \
                else manifest.data.get(value["variable"])
            if text is None:
                problems.append(Problem(config.locate("etl", "TAGS", key),
                                        f"tag {key} names variable '{value['variable']}', "
                                        "which this pipeline does not set",
                                        ("etl", "TAGS", key), severity="warning",
                                        code="config"))
                continue
        if len(str(key)) > 128 or len(str(text)) > 256:
            problems.append(Problem(config.locate("etl", "TAGS", key),
                                    f"tag {key}: keys are at most 128 characters and values "
                                    "256", ("etl", "TAGS", key), code="config"))
            continue
        tags[str(key)] = str(text)
    if len(tags) > free:
        problems.append(Problem(where, f"etl.TAGS gives {len(tags)} tags; a pipeline has at "
                                f"most {MAX_TAGS} tags and the reconciler uses "
                                f"{MAX_TAGS - free}, so {free} are left", ("etl", "TAGS"),
                                hint=f"keep at most {free} tags", code="config"))
    return tags, problems
