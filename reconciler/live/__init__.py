"""The live state of an environment, and every call to AWS (the only code importing boto3).

``aws.py`` holds the client of one environment: reading managed pipelines in batches,
definitions on demand, and the writes the apply stage asks for. ``model.py`` holds the plain
data the rest of the controller sees.
"""
