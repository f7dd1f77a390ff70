"""What gets published, pure: the ConfigMap/Secret data (`outputs`), the bodies of our objects and of
shared targets (`bodies`), the write loop's contract (`writes`), the owners' allow-list (`allow`) and
one module per gateway-native output (`gateways`). May import `model`, `keys`, `verify`, `resource`,
`fetch`."""
