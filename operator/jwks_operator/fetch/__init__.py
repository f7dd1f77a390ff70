"""Fetching JWK Sets over HTTP(S): the fetcher, its deadline over the whole exchange, the bounded body,
the address guard (`netguard`) and TLS trust from CA bundles. May import the layers below: `model`,
`keys`, `verify`, `resource`."""
