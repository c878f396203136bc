"""Benchmarks of smtpcore side by side with smtplib, aiosmtplib and smtpproto.

Run ``python -m bench`` (``make bench``) or ``python -m bench --quick``; see
``bench/README.md``.
"""
