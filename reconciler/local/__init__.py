"""One step of a compiled pipeline, run on databases you point at: Dataduct's staging mode,
made local (``reconciler sql`` and ``reconciler run-step``).

A step's SQL activities run on PostgreSQL (standing in for Redshift): their scripts are
evaluated for a scheduled time as the service evaluates expressions, transpiled from Redshift's
dialect (``reconciler.desired.sql.to_postgres``) and executed statement by statement on one
connection, so the scripts' own transactions hold. Its QA activities run the QA runner in
process with the databases given.
"""

from .steps import (
    LocalRunError,
    StepActivity,
    evaluation,
    postgres_connection,
    qa_invocation,
    run_sql,
    run_step,
    step_activities,
    step_sql,
)

__all__ = [
    "LocalRunError",
    "StepActivity",
    "evaluation",
    "postgres_connection",
    "qa_invocation",
    "run_sql",
    "run_step",
    "step_activities",
    "step_sql",
]
