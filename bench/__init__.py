"""The performance benchmark of the governance jobs (``make bench``; see bench/README.md).

``python -m bench.run --orders N`` seeds a store of N orders in the local PostgreSQL and
measures, alternating round-robin, the COPY floor, the pg_dump incumbents, the project's
backup (library call and whole DAG run, with and without encryption), restores, validation,
a nightly purge and an access audit; it writes JSON, markdown and an SVG chart under
``bench/results/``.
"""
