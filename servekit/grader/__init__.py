"""Grade submitted notebooks: run each in a fresh kernel, check its live app, tear everything down.

``python -m servekit.grade SUBMISSIONS --assignment 10 [--out DIR] [--timeout-s N]`` (``servekit/grade.py``
is the command; the grader is this package).

SUBMISSIONS is one notebook or a folder with one per student (``alice.ipynb`` or
``alice/10_capstone.ipynb``). For each submission the grader

1. scans its code for references to the hidden checks or to the grader (``checks_NN``,
   ``servekit.grade``, ``servekit.grader``, a string naming ``grading/`` other than the public
   rubric's path); such a submission is not run: it is flagged and scores 0;
2. copies it into a fresh work folder under ``scratch/grading/`` (with its own ``scratch/``, so no
   earlier run's files count) and executes it with nbclient in a fresh kernel, in a worker
   process, with a per-cell timeout and a whole-notebook limit, up to its cleanup cells (from the
   start of the last group of cells tagged ``cleanup``, else the cells after a ``## Cleanup``
   heading, else the last code cell when it shuts Serve or Ray down: see
   :func:`~servekit.grader.notebook.cleanup_cells`); execution stops at the first error, as "Run
   All" does, except in cells tagged ``raises-exception``; cells marked ``# NBVAL_SKIP`` (optional
   measurements that the course's own tests skip too) are skipped;
3. runs the hidden checks (``grading/checks_NN.py``) from this process against the live app:
   the HTTP checks here, where the submission cannot patch them; what they need from inside the
   kernel (the ``CAPSTONE`` dict, ``serve.status()``, the Serve port) comes from one injected
   cell that prints JSON, which is treated as untrusted input;
4. runs the submission's cleanup cells, then looks for anything the submission started that
   is still running, or an MLflow registry it kept under its ``scratch/`` (the
   ``cleanup_leaves_nothing`` check), and finally stops every such
   process by PID (the worker's process group, the kernel's, all their descendants, and the
   Ray cluster found in the submission's session folder), then checks that nothing is left;
5. writes ``report.json`` and ``report.md`` per submission (and ``gradebook.csv`` for a folder).

A submission that cannot be graded at all (a name that is not UTF-8 text, a file that nbformat
cannot read or that the notebook format's schema rejects) is not run: its report says "not
gradeable" and why, it scores 0, and the folder's other submissions are graded.

Points come from ``grading/rubric_NN.json``; each check is all or nothing. Integrity: a
submission whose code names the hidden checks or the grader, or that changes their files while
it runs, is flagged and its score is set to 0 (a penalty, for every assignment); the report
still lists what the checks found when it ran, for the instructor's review.

The modules, in the order a run uses them: ``cli`` (the command, a folder of submissions),
``run`` (one submission), ``rubric`` (the rubric, the hidden checks, :class:`~servekit.grader.rubric.Live`),
``notebook`` (cleanup cells, integrity), ``probe`` (the injected cell), ``worker`` (the process that runs the
notebook), ``checks`` (running the checks, the cleanup check), ``processes`` (finding and stopping by PID),
``report`` (report.json, report.md, gradebook.csv).
"""
