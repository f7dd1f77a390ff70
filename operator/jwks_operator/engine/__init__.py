"""The core loop, testable in process with fakes: JwtSecrets tracked by generation, a scheduler of
refreshes, shared URL sources, the reconciler, the publisher and the gateway outputs' writer. May import
every layer below: `model` to `runtime`."""
