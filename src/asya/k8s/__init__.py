"""Asya on Kubernetes (docs/reference/asyncactor.md): the AsyncActor resource and its operator.

``crd`` holds the resource definition and validates actors off-cluster; ``render`` turns an
actor into its Kubernetes objects (pure); ``reconcile`` applies them through ``api`` (the only
module that talks to the API server); ``operator`` is the thin kopf layer. See
docs/kubernetes.md.
"""
