"""Generation as jobs: a fair, bounded queue with progress, cancel and per-client ownership.

`model` (the job, its states, the record codec, the `Jobs` protocol both backends answer, round-robin order),
`local` (the embedded backend: one process, records in SQLite), `redis_front` (the web front's side of the Redis
backend), `redis_worker` (a GPU worker's side: takes jobs, runs them, reports back). Below the web app and the
generator: a worker imports `model` and `redis_worker`, never Flask or the search service.
"""
