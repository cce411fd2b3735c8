"""The desired state: manifests in, Data Pipeline definitions out.

Pure by contract (import-linter checks it): nothing here reads a clock, the network, the
environment or the filesystem. The repository arrives as a :class:`~reconciler.source.Snapshot`
of bytes; everything else is computation.
"""
