"""What the tests run against: an emulated (k8s/) or real (control_plane.py) cluster, the operator
process, JWKS providers, and a client for JwtSecrets (client.py)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
