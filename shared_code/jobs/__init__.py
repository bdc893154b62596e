"""Background jobs that fan out over the Storage Queue `gatehouse-jobs` instead of walking every tenant in one run.

A job's timer only *walks*: it reads the tenants (or the rows naming them) page by page in key order and
enqueues one message per small shard of tenants as it goes. When its own budget is spent it enqueues a
continuation message that names the last tenant it reached, and the queue function goes on from there; no
job ever restarts from the first tenant. The queue function does one unit of work per message (the shard's
tenants, each with the job's own per-tenant work), with its own budget and the same storage deadline as an
HTTP request (`tables.request_deadline`).

One tenant's failure never stops the others: in a shard, a failing tenant is put back on the queue as a
message of its own; a message of one tenant that fails is retried by the Functions host (host.json
`maxDequeueCount`), then moved to `gatehouse-jobs-poison`. Each failure is written to the `jobs` table
(storage/jobs.py), which the operator reads at `GET /api/jobs`; a later success deletes it.

`fanout` is the machinery; `catalog` names the jobs and their per-tenant work.
"""
