"""The two enumeration engines by name: the one place that knows both (each builds on `maso.regions._engine`)."""

from __future__ import annotations

from typing import Any

from maso.core.network import Network
from maso.core.polytope import Polytope
from maso.regions._engine import Engine
from maso.regions._lp_engine import LPEngine
from maso.regions._vertex_engine import VertexEngine

ENGINES: dict[str, type[Engine[Any]]] = {LPEngine.method: LPEngine, VertexEngine.method: VertexEngine}


def make_engine(net: Network, domain: Polytope, tol: float, method: str) -> Engine[Any]:
    """The engine of ``method`` (``"lp"`` or ``"vertices"``; ``"auto"`` is resolved by the driver) for ``net``
    on ``domain`` at ``tol``."""
    return ENGINES[method](net, domain, tol)
