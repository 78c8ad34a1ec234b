"""The notebooks here are submissions for the grader's tests (tests/test_grade.py), not lessons:
nbval must not run them (some fail, loop or leak on purpose)."""

collect_ignore_glob = ["*.ipynb", "make_fixtures.py"]
