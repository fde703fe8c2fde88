"""Real networks for both modes: virtual time, stragglers, churn and lossy links.

* :mod:`dfl.network.draws`: the one generator family (a counter-based hash in numpy
  and jax.numpy) of every draw, shared with the deployment's fault injector;
* :mod:`dfl.network.compute`, :mod:`dfl.network.links`, :mod:`dfl.network.churn`:
  the host-side tables (compute seconds, link latency/bandwidth, online table);
* :mod:`dfl.network.model`: a run's :class:`~dfl.network.model.NetworkModel`;
* :mod:`dfl.network.clock`: one round's delivery mask and virtual clocks (numpy or jnp);
* :mod:`dfl.network.round`: the simulation's jitted round over the model;
* :mod:`dfl.network.schedule`: the host replay of a whole run, saved as a file;
* :mod:`dfl.network.deploy`: the deployment's side (fault config, schedule per node).
"""
