"""Hostile servers and bad input: a scripted peer against every adapter."""
