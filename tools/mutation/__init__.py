"""Mutation testing of the security core (`make mutation`, and the gate `make mutation-gate` in `make test`).

A small AST driver of the project's own: `operators` lists the mutants of a module (pure), `scope` says
which modules and functions are mutated and which fast unit tests run against them, `runner` runs each
mutant in a forked child (the mutated module compiled in memory and imported through a finder placed
first on sys.meta_path), `results` caches verdicts and reads the accepted equivalent mutants
(equivalents.txt, beside this file), and `__main__` prints the table and applies the gate.
"""
