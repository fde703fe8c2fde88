"""dfl: decentralized federated learning on JAX.

One algorithm definition runs as a vectorized simulation (``python -m dfl.train``)
and as a real deployment, one process per node (``python -m dfl.node``).
"""

__version__ = "0.1.0"
