"""Keys, pure: JWK members and hostile-key checks, key set validation (`keyset`), static keys from a spec.
May import `model`."""
