"""A second target: AWS Data Pipeline definitions translated to Apache Airflow 3 DAG files.

``translate`` turns one definition (:class:`Source`) into a :class:`DagFile`; ``jinja``
writes the service's expressions as Jinja, ``schedule`` its schedules as timetables,
``pycode`` lays the Python out. Pure: nothing here imports Airflow, touches the network or
reads a file; the command line writes the files (``reconciler export --target airflow``).
"""

from .translate import DagFile, FileCopy, Refusal, Source, TranslationError, source_of, translate

__all__ = ["DagFile", "FileCopy", "Refusal", "Source", "TranslationError", "source_of",
           "translate"]
