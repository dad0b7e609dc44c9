"""OpenCRVS (v1.9+ events): the REGISTER action confirmation of a birth (contract 10)."""
