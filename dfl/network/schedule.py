"""A run's whole network schedule, replayed on the host, and its file.

:func:`replay` runs :func:`dfl.network.clock.step` with numpy over every round of a
mixing schedule: the same definition the simulation's jitted round runs, so a
deployment decides delivery from it (never from wall-clock timing) and reports
the same ``sim_time``, ``messages_missing`` and ``retransmissions``. A schedule is
saved to and loaded from one ``.npz`` file (:func:`save`, :func:`load`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from dfl.network import clock
from dfl.network.model import NetworkModel
from dfl.topology.schedule import MixingSchedule


@dataclasses.dataclass(frozen=True)
class Schedule:
    """What the network did in every round (numpy arrays, leading axis: round).

    Attributes:
      delivered: bool ``[R, N, N]``, ``delivered[t, i, j]``: ``j``'s message reached ``i``.
      online: bool ``[R, N]``.
      clock: float32 ``[R, N]``: each node's clock after the round (cumulative seconds).
      missing: int32 ``[R, N]``: messages missing at each receiver so far.
      retransmissions: int32 ``[R, N]``: retransmissions of each receiver's messages so far.
      sent: int32 ``[R, N]``: messages each node sent so far.
    """

    delivered: np.ndarray
    online: np.ndarray
    clock: np.ndarray
    missing: np.ndarray
    retransmissions: np.ndarray
    sent: np.ndarray

    def senders(self, round_: int, node: int) -> set[int]:
        """The in-neighbours whose message of ``round_`` reached ``node``."""
        return set(np.flatnonzero(self.delivered[round_, node]).tolist())


def replay(model: NetworkModel, mixing: MixingSchedule, rounds: int | None = None) -> Schedule:
    """The schedule of ``rounds`` (default: the model's) over ``mixing``'s graphs."""
    rounds = model.rounds if rounds is None else rounds
    net = clock.init(np, model.n)
    rows: dict[str, list[np.ndarray]] = {f.name: [] for f in dataclasses.fields(Schedule)}
    for t in range(rounds):
        net, out = clock.step(np, model, net, np.asarray(mixing.weights(t)) != 0)
        rows["delivered"].append(np.asarray(out.delivered, dtype=bool))
        rows["online"].append(np.asarray(out.online, dtype=bool))
        rows["clock"].append(net.clock)
        rows["missing"].append(net.missing)
        rows["retransmissions"].append(net.retransmissions)
        rows["sent"].append(net.sent)
    return Schedule(**{k: np.stack(v) for k, v in rows.items()})


def save(path: str | Path, schedule: Schedule) -> None:
    """Writes ``schedule`` as an ``.npz`` file (no pickle)."""
    np.savez_compressed(Path(path), **dataclasses.asdict(schedule))


def load(path: str | Path) -> Schedule:
    """Reads a :func:`save` file."""
    with np.load(Path(path), allow_pickle=False) as f:
        names = [field.name for field in dataclasses.fields(Schedule)]
        missing = [k for k in names if k not in f]
        if missing:
            raise ValueError(f"{path} is not a network schedule: it lacks {missing}")
        return Schedule(**{k: f[k] for k in names})
