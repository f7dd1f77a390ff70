"""jwks-operator: declare JWT verification keys as Kubernetes resources."""

__version__ = "0.1.0"
