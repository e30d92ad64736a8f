"""A read-only HTTP API over the live open-data release: the catalogue, rows with filters and
keyset pagination, the latest reading per station, and the published files with range requests.

Nothing here writes: it reads ``latest.json`` and the files it names on the public side.
"""
