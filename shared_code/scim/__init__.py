"""SCIM 2.0 (RFC 7643/7644) for Microsoft Entra provisioning: schemas, filters, PATCH, resources and the
service that ties them to the directory. Nothing here imports azure.functions; `functions/scim_*.py` adapt it."""
