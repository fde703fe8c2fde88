"""The simulation runner: every node in one process, one ``jax.jit`` per round."""
