"""Pilot Protocol on one host: a loopback cluster (rendezvous + daemons) and its registry.

* :mod:`dfl.pilot.cluster`: ``python -m dfl.pilot up/down`` — the rendezvous and N
  daemons with every public default overridden, inside a loopback-only namespace.
* :mod:`dfl.pilot.registry`: the registry's JSON calls dfl needs (create a run's
  network, look a node up).
* :mod:`dfl.pilot.netns`: the loopback-only check.

The daemons, ``pilotctl`` and the SDK come from the optional ``pilotprotocol``
package (AGPL-3.0); the rendezvous is a separate Go binary.
"""
