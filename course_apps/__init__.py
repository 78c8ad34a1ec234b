"""Lesson code that lives in files: apps and models the lessons deploy by import path.

Unlike ``servekit`` (plumbing), everything here is lesson content: each notebook that uses a
module here prints its source and explains it. Modules live in a package, not in notebook
cells, because a config deploy (``serve deploy``, ``serve run config.yaml``, the REST API)
imports an application by path, and MLflow stores a model's code file with every version.
"""
