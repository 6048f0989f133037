"""``asya up``: every process of a pipeline on one machine (docs/reference/asya-yaml.md).

``config`` reads and validates asya.yaml into the objects of ``model``; ``autoscale`` holds
the KEDA rule; ``supervisor`` runs and restarts child processes; ``replica`` pairs a runtime
with its sidecar; ``group`` scales one actor's replicas; ``status`` writes the ready table and
``.asya/up.json``; ``mesh`` composes them into a running mesh.
"""
