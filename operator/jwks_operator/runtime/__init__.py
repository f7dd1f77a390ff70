"""What a running process has beside its work: Prometheus metrics, log formats, leader election.
Used by the engine, so below it; imports nothing above `kube`."""
