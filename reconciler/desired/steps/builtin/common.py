"""What the built-in step types share: the base class, quoting, the QA runner's command,
table names, SQL activities and the Redshift login.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from jsonschema import Draft202012Validator
from sqlglot import exp

from ... import sql as sqlgen
from ...schemas import step_validator
from ..base import StepResult, param
from ..context import StepContext, staging_vars

DEFAULT_QA_PYTHON = "python3"


SCHEDULED_DAY = "#{format(@scheduledStartTime, 'YYYY-MM-dd')}"


class BuiltinStep:
    step_type = ""
    produces_output = False
    resource = "ec2"

    def validator(self) -> Draft202012Validator:
        return step_validator(self.step_type)

    def compile(self, ctx: StepContext) -> StepResult:  # pragma: no cover - overridden
        raise NotImplementedError


def argument_list(values: Any) -> list[str]:
    return [staging_vars(v) for v in (values or [])]


def quote(value: str) -> str:
    """A value as one shell word. Data Pipeline expressions and staging variables stay
    outside single quotes where they must expand (``${INPUT1_STAGING_DIR}``)."""
    return shlex.quote(value)


def run_script_command(uri: str) -> str:
    """Download a script and run it with the activity's arguments."""
    local = "./" + uri.rsplit("/", 1)[-1]
    return (f"aws s3 cp {quote(uri)} {quote(local)} && chmod +x {quote(local)} && "
            f'{quote(local)} "$@"')


def custom_qa_runner(ctx: StepContext) -> list[str] | None:
    """The command words of a QA runner the config names instead of the bundled one
    (``etl.QA_RUNNER``, split like a shell would)."""
    runner = ctx.config.get("etl", "QA_RUNNER")
    if runner in (None, ""):
        return None
    try:
        words = shlex.split(str(runner))
    except ValueError as exc:
        ctx.fail(f"etl.QA_RUNNER '{runner}' is not a command: {exc}")
    if not words or not all(re.fullmatch(r"[A-Za-z0-9_./=:@+-]+", w) for w in words):
        ctx.fail(f"etl.QA_RUNNER '{runner}' is not a plain command",
                 hint="name the installed command and its fixed arguments, e.g. "
                      "'/opt/qa/bin/python -m reconciler.qa'")
    return words


def qa_install(ctx: StepContext) -> str:
    """Shell lines that install the bundled QA runner on the resource unless this version is
    there already: its wheel and its drivers' wheels from the artifacts bucket (no package
    index), into a virtualenv moved into place only when complete. Sets ``runner``."""
    runner, wheel, wheelhouse = ctx.qa_runner()
    python = str(ctx.config.get("etl", "QA_PYTHON", DEFAULT_QA_PYTHON))
    if not re.fullmatch(r"[A-Za-z0-9_./-]+", python):
        ctx.fail(f"etl.QA_PYTHON '{python}' is not a plain command",
                 hint="name the Python 3.11+ interpreter of the resource, e.g. python3.11")
    home = '"$HOME/.dataduct-reconciler"'
    packages = " ".join(quote(r) for r in runner.requirements)
    return "\n".join([
        "set -e",
        f'runner="$HOME/.dataduct-reconciler/{runner.version}-{runner.sha256[:16]}"',
        'if [ ! -x "$runner/bin/python" ]; then',
        f"  mkdir -p {home}",
        '  work="$(mktemp -d "$HOME/.dataduct-reconciler/install.XXXXXX")"',
        f'  aws s3 cp --quiet {quote(wheel.s3_uri)} "$work/wheels/{runner.wheel_name}"',
        f'  aws s3 cp --quiet --recursive {quote(wheelhouse)} "$work/wheels/"',
        f'  {python} -m venv "$work/venv"',
        f'  "$work/venv/bin/python" -m pip install --quiet --no-index --no-deps '
        f'--find-links "$work/wheels" {packages}',
        '  mv -T "$work/venv" "$runner" 2>/dev/null || true',
        '  rm -rf "$work"',
        "fi",
    ])


# Passwords reach a check on its standard input, never its argument list: a here-document
# with a quoted delimiter, so the shell expands nothing in them.
SECRETS_DELIMITER = "DATADUCT_QA_PASSWORDS"


def with_passwords(command: str, passwords: dict[str, str]) -> str:
    """``command`` reading ``name=value`` lines (the encrypted parameters) on stdin."""
    if not passwords:
        return command
    lines = "\n".join(f"{k}={v}" for k, v in sorted(passwords.items()))
    return f"{command} <<'{SECRETS_DELIMITER}'\n{lines}\n{SECRETS_DELIMITER}"


def qa_command(ctx: StepContext, check: str, passwords: dict[str, str] | None = None) -> str:
    """The command of a QA activity: the bundled runner (installed first when missing) or the
    config's ``etl.QA_RUNNER``, the check, and the passwords on standard input."""
    custom = custom_qa_runner(ctx)
    if custom is not None:
        words = " ".join(quote(w) for w in [*custom, check])
    else:
        words = f'{qa_install(ctx)}\n"$runner/bin/python" -m reconciler.qa {check}'
    if passwords:
        words += " --passwords_from_stdin"
    return with_passwords(words + ' "$@"', passwords or {})


def qa_log_args(ctx: StepContext) -> list[str]:
    args = [f"--test_name={ctx.pipeline_name}.{ctx.step.name}"]
    if param(ctx, "log_to_s3", False):
        qa = str(ctx.config.get("etl", "QA_LOG_PATH", "qa")).strip("/")
        args.append(f"--log_to_s3={ctx.s3_base()}/{qa}/{ctx.pipeline_name}/{ctx.step.name}/")
    topic = ctx.config.get("etl", "SNS_TOPIC_ARN_WARNING")
    if topic:
        args.append(f"--sns_topic_arn={topic}")
    retries = ctx.config.get("etl", "CONNECTION_RETRIES")
    if retries is not None:
        args.append(f"--connection_retries={int(retries)}")
    return args


def table_of(name: Any, ctx: StepContext, key: str, dialect: str) -> exp.Table:
    """A table a manifest names (``schema.table``), each part quoted."""
    parts = str(name).split(".")
    if not 1 <= len(parts) <= 3 or not all(parts):
        ctx.fail(f"'{name}' is not a table name (table, schema.table or db.schema.table)", key)
    quoted = [exp.to_identifier(p, quoted=True) for p in parts]
    return exp.Table(this=quoted[-1], db=quoted[-2] if len(quoted) > 1 else None,
                     catalog=quoted[0] if len(quoted) > 2 else None)


def select_all(table: exp.Table, dialect: str) -> str:
    return exp.select("*").from_(table).sql(dialect=dialect)


def sqlglot_dialect(name: str) -> type:
    from sqlglot.dialects.dialect import Dialect

    return type(Dialect.get_or_raise(name))


def sql_activity(ctx: StepContext, script: str, *, suffix: str = "",
                  arguments: list[str] | None = None, queue: str | None = None):
    """A SqlActivity on Redshift."""
    return ctx.activity("SqlActivity", suffix=suffix, database=ctx.redshift(),
                        script=script, scriptArgument=arguments, queue=queue)


def check_activity(ctx: StepContext, table: sqlgen.TableDefinition, suffix: str = "") -> None:
    """The primary-key check of a table: SQL on Redshift, or the QA runner when its result is
    logged to S3 (``log_to_s3``)."""
    if param(ctx, "log_to_s3", False):
        passwords: dict[str, str] = {}
        arguments = [f"--table={table.full_name}",
                     f"--primary_key={','.join(table.primary_key)}",
                     *redshift_args(ctx, passwords), *qa_log_args(ctx)]
        ctx.activity("ShellCommandActivity", suffix=suffix,
                     command=qa_command(ctx, "primary-key", passwords),
                     scriptArgument=arguments)
        return
    with ctx.sql_errors():
        sql_activity(ctx, sqlgen.primary_key_check_sql(table).text(), suffix=suffix)


def redshift_args(ctx: StepContext, passwords: dict[str, str]) -> list[str]:
    """Where Redshift is; its password goes into ``passwords``."""
    ctx.redshift()
    login = ctx.redshift_login()
    passwords["destination_password"] = login.password
    return [f"--destination_host={login.host}", f"--destination_port={login.port}",
            f"--destination_database={login.database}", f"--destination_user={login.user}"]


def plain_names(ctx: StepContext, key: str, *names: Any) -> None:
    """Names the service writes into its own SQL (RedshiftCopyActivity's COPY, SqlDataNode):
    they must be plain identifiers, as the service does not quote them."""
    for name in names:
        if name is not None and not all(IDENTIFIER.fullmatch(part)
                                        for part in str(name).split(".")):
            ctx.fail(f"'{name}' is not a plain table or column name; AWS Data Pipeline puts it "
                     "into SQL as it is", key,
                     "use letters, digits, '_' and '$' (and '.' between schema and table)")


IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def grants_of(ctx: StepContext) -> sqlgen.Grants:
    """The config's database.permissions as (permission, principal, is_group)."""
    grants = []
    for index, grant in enumerate(ctx.config.section("database").get("permissions") or []):
        if not PRIVILEGE.fullmatch(str(grant.get("permission", ""))):
            ctx.fail(f"permission '{grant.get('permission')}' is not a privilege such as "
                     "SELECT or ALL", hint="write one privilege (select, insert, all...)",
                     location=ctx.config.locate("database", "permissions", index,
                                                "permission"))
        if grant.get("user"):
            grants.append((str(grant["permission"]), str(grant["user"]), False))
        if grant.get("group"):
            grants.append((str(grant["permission"]), str(grant["group"]), True))
    return tuple(grants)


PRIVILEGE = re.compile(r"[A-Za-z]+( [A-Za-z]+)*")
