"""Deletion as a service: ``obliviate serve``, its ledger and its certificates.

  service.py      the served model, the ledger and what a deletion does to them (replay on start)
  app.py          the HTTP API (FastAPI): OpenAI-compatible completions, deletions, the ledger page
  server.py       bind, load, replay, run uvicorn
  generation.py   batched generation on the model-owning thread
  jobs.py         dense deletions: a post-hoc method in a worker process, queued, swapped in atomically
  ledger.py       the append-only SQLite (WAL) ledger and its fold into deletion records
  auth.py         bearer tokens (admin / client)
  sources.py      which sources a request names (ids, names, ``re:PATTERN``)
  certificate.py  a certificate per deletion (JSON + markdown)
  page.py         the read-only ledger page at ``/``

Importing this package imports none of them (the job worker runs as
``python -m obliviate.serve.jobs`` without FastAPI). docs/serving.md is the guide.
"""
