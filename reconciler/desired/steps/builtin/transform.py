"""The steps that run programs: transform (a script on EC2), qa-transform,
emr-streaming and emr-step.
"""

from __future__ import annotations

from ..base import OutputNode, StepResult, param
from ..context import StepContext
from .common import BuiltinStep, argument_list, qa_log_args, quote, run_script_command

STREAMING_JAR = "/home/hadoop/contrib/streaming/hadoop-streaming.jar"


def _transform_command(ctx: StepContext) -> tuple[str, list[str]]:
    extra = [f"aws s3 cp {quote(str(uri))} ./" for uri in param(ctx, "additional_s3_files", [])]
    if param(ctx, "command"):
        command = str(param(ctx, "command"))
    elif param(ctx, "script"):
        command = run_script_command(ctx.file_uri("script"))
    else:
        name = param(ctx, "script_name")
        if not name:
            ctx.fail("script_directory needs script_name, the script to run", "script_name")
        if str(name).startswith("/") or ".." in str(name).split("/"):
            ctx.fail(f"script_name '{name}' must be a path inside script_directory",
                     "script_name")
        prefix = ctx.directory_uri("script_directory")
        directory = "./" + prefix.rsplit("/", 1)[-1]
        script = f"{directory}/{name}"
        command = (f"aws s3 cp --recursive {quote(prefix + '/')} {quote(directory + '/')} && "
                   f'chmod +x {quote(script)} && {quote(script)} "$@"')
    return " && ".join([*extra, command]), argument_list(param(ctx, "script_arguments"))


class Transform(BuiltinStep):
    step_type = "transform"
    produces_output = True

    def compile(self, ctx: StepContext) -> StepResult:
        command, arguments = _transform_command(ctx)
        inputs = ctx.inputs()
        result = StepResult()
        outputs: list[OutputNode] = []
        if not param(ctx, "no_output", False):
            result.output = ctx.output_node()
            outputs = [result.output]
            for name in param(ctx, "output_node", []):
                result.named_outputs[name] = ctx.output_node(
                    name, path=f"{result.output.path}/{name}")
        ctx.activity("ShellCommandActivity", inputs=inputs, outputs=outputs, command=command,
                     scriptArgument=arguments, stage=bool(inputs or outputs))
        return result


class QaTransform(BuiltinStep):
    step_type = "qa-transform"

    def compile(self, ctx: StepContext) -> StepResult:
        command, arguments = _transform_command(ctx)
        inputs = ctx.inputs()
        ctx.activity("ShellCommandActivity", inputs=inputs, command=command,
                     scriptArgument=[*arguments, *qa_log_args(ctx)], stage=bool(inputs))
        return StepResult()


class EmrStreaming(BuiltinStep):
    step_type = "emr-streaming"
    produces_output = True
    resource = "emr"

    def compile(self, ctx: StepContext) -> StepResult:
        mapper = ctx.file_uri("mapper")
        files = [mapper]
        reducer = ctx.file_uri("reducer") if param(ctx, "reducer") else None
        if reducer:
            files.append(reducer)
        for key, uri in (("mapper", mapper), ("reducer", reducer or "")):
            if "," in uri:
                ctx.fail(f"'{uri.rsplit('/', 1)[-1]}' has a comma, which would split the EMR "
                         "step's arguments", key, "rename the file")
        inputs = ctx.inputs()
        if not inputs:
            ctx.fail("emr-streaming reads an input; no earlier step writes one", "input_node")
        output = ctx.output_node()
        parts = [STREAMING_JAR, *param(ctx, "hadoop_params", []), "-files", ",".join(files),
                 "-mapper", mapper.rsplit("/", 1)[-1]]
        parts += ["-reducer", reducer.rsplit("/", 1)[-1]] if reducer else ["-numReduceTasks", "0"]
        for node in inputs:
            parts += ["-input", node.path]
        parts += ["-output", output.path]
        ctx.activity("EmrActivity", inputs=inputs, outputs=[output], resource="emr",
                     step=",".join(parts))
        return StepResult(output=output)


class EmrStep(BuiltinStep):
    step_type = "emr-step"
    produces_output = True
    resource = "emr"

    def compile(self, ctx: StepContext) -> StepResult:
        inputs = ctx.inputs()
        output = ctx.output_node()
        ctx.activity("EmrActivity", inputs=inputs, outputs=[output], resource="emr",
                     step=param(ctx, "step_string"))
        return StepResult(output=output)
