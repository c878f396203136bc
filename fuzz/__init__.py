"""Coverage-guided fuzz harnesses for the smtpcore core (atheris), with a pure-Python replay mode.

Run ``python -m fuzz.run --help`` from the repository root. The harness modules
(``fuzz_replies``, ``fuzz_session``, ``fuzz_commands``) import without atheris;
:mod:`fuzz.fuzzlib` holds the input format and the oracles they share.
"""
