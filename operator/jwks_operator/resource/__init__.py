"""The JwtSecret resource, pure: its spec parsed and validated (`spec`), its status built (`status`).
May import `model`, `keys` and `verify`."""
