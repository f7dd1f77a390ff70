"""Fetching JWK Sets over HTTP(S): the fetcher, its requests adapter (`adapter`: a proxy is asked for the
vetted address), its deadline over the whole exchange, the bounded body, the address guard (`netguard`)
and TLS trust from CA bundles. May import the layers below: `model`, `keys`, `verify`, `resource`."""
