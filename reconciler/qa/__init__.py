"""The QA runner: the checks that compiled QA steps run on the pipeline's EC2 resource.

``python -m reconciler.qa CHECK ...`` (or ``reconciler qa CHECK ...``) runs one check:

* ``primary-key``: duplicates of a table's primary key (PostgreSQL/Redshift);
* ``count``: a source count (MySQL) against a destination count, within a tolerance in %;
* ``column``: a sample of source rows compared column by column with the destination's rows
  of the same key, within a tolerance in % of mismatched rows;
* ``dependencies``: waits until the named pipelines' runs of a day have finished, reading
  their state through the Data Pipeline API (the AWS CLI of the resource).

Each result is one JSON record on standard output (and, with ``--log_to_s3``, in S3) and a
readable line on standard error; the exit code is 0 exactly when the check passes, so the
activity fails when the check does. Passwords come from standard input
(``--passwords_from_stdin``) or the environment, never from the argument list.

The runner imports nothing of the controller: it is installed on the resource with its two
database drivers only (``reconciler.qa.bundle``).
"""
