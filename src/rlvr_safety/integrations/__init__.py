"""Bridges to other evaluation tools (optional extras): inspect_ai tasks, scorers and log reading."""
