"""Field interfaces (contract 10): OSIA UIN and Data Access, OpenCRVS REGISTER.

Thin adapters: each maps an outside format to the request models of `persons/` and calls the
same service functions as our own API (`persons.issuance.issue`, `persons.access`), with its
mapping kept as data. No issuance or validation rule lives here.
"""
