"""Dataduct reconciler: a GitOps controller for ETL pipelines on AWS Data Pipeline.

The package follows the data flow of the controller, one sub-package per stage:
``source`` reads a manifests repository, ``desired`` compiles it into Data Pipeline
definitions (pure), and the command line in ``cli`` runs the chain.
"""

__version__ = "0.1.0"
