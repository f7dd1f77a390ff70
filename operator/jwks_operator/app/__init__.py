"""The process: the command line (`run`, `verify`), its one-line errors, and the thin Kopf handlers that
feed the engine. The top layer: may import all others; none imports it."""
