"""The OpenAPI 3.1 document of the programs' API: `operations` is the vocabulary each function in
`functions/` declares its endpoint with (beside its route); `document` walks the registered functions
and assembles the document served at `GET /api/openapi.json`.
"""
