"""Carrying out a plan: uploads, creates, puts, activations, tags, archives and deletes.

Each pipeline is applied on its own and in an order that a crash at any point leaves
repairable by the next pass: create with a uniqueId derived from the desired state (a retry
returns the same pipeline), tag it as pending, put, activate, and record the digest last.
"""
