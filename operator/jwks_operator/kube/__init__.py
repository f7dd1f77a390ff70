"""The Kubernetes adapter, thin I/O: plain JSON over the client's pool (`http`), priority lanes for API
calls (`lanes`), typed reads and writes of our objects (`objects`, `adapter`). May import every layer
below it: `model` to `publish`."""
