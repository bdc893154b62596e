"""The one storage layer over Azure Table Storage: every tenant-owned row has PartitionKey = tenant id.

`tables` owns the client, error mapping and transactions; `tenants`, `directory`, `sign_ins` and `audits`
are the stores the cores use. Nothing outside this package builds a table query.
"""
