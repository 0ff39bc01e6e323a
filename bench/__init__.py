"""Benchmarks: each starts the real server on a database of its own and prints figures.

Run one with ``python -m bench.import_contacts`` (or ``bench.api_contacts``) from the project
root, or all of them with ``make bench``.  They never assert on time; docs/benchmarks.md holds
the figures and the verdict against each goal.
"""
