"""Plans: what to do to each pipeline of an environment, and why (pure; no client, no clock).

``diff.py`` normalises both sides and compares them field by field; ``planner.py`` turns the
comparison into one action per pipeline and applies the policy's safety guards (the one place
they live); ``render.py`` prints a plan for terminals, machines and pull requests.
"""
