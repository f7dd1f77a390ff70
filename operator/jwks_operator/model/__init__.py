"""The vocabulary, pure and without I/O: API names, errors, durations, URL rules, shared providers and the
cache policy (how long a fetched JWK Set stays fresh). Imports nothing else of the package."""
