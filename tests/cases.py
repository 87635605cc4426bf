"""Shared test cases: small MLPs from explicit weights, random 2-D cases with their exact rational regions, and
degenerate arrangements (duplicated, dead, zero-weight units; concurrent lines), used by several test folders."""

from __future__ import annotations

import exact2d
import numpy as np

import maso
from maso.layers import Dense, absolute, leaky_relu, relu


def mlp_from_weights(weights: list[tuple[np.ndarray, np.ndarray]], act=relu) -> maso.Network:
    layers = []
    for i, (W, b) in enumerate(weights):
        layers.append(Dense(W, b))
        if i < len(weights) - 1:
            layers.append(act())
    return maso.Network.sequential((weights[0][0].shape[1],), layers)


def random_hidden(widths, rng, bias_scale=0.5):
    return [(rng.normal(size=(b, a)), rng.normal(size=b) * bias_scale) for a, b in zip(widths[:-1], widths[1:])]


def random_2d_case(seed: int, depth: int, act: str, max_width: int):
    """A random 2-D MLP of ReLU, leaky-ReLU or abs units and its exact rational regions on [-1, 1]^2."""
    rng = np.random.default_rng(seed)
    widths = [2] + [int(w) for w in rng.integers(2, max_width + 1, size=depth)]
    hidden = random_hidden(widths, rng)
    slopes = {"relu": (0.0, 1.0), "leaky": (0.1, 1.0), "abs": (-1.0, 1.0)}[act]
    make = {"relu": relu, "leaky": lambda: leaky_relu(0.1), "abs": absolute}[act]
    net = mlp_from_weights(hidden + [(rng.normal(size=(1, widths[-1])), np.zeros(1))], make)
    return net, exact2d.regions([(W, b, slopes) for W, b in hidden], -1, 1)


def degenerate_nets():
    rng = np.random.default_rng(7)
    W1, b1 = rng.normal(size=(5, 2)), rng.normal(size=5) * 0.3
    W2, b2 = rng.normal(size=(4, 5)), rng.normal(size=4) * 0.3
    dup = (np.vstack([W1, W1[:2], np.zeros((1, 2)), np.zeros((1, 2))]),   # duplicates, a zero-weight unit
           np.concatenate([b1, b1[:2], [0.7], [-0.4]]))                       # constant on / constant off
    W2d = np.hstack([W2, rng.normal(size=(4, 4))])
    yield "duplicated-and-constant-units", [dup, (W2d, b2)]
    yield "zero-biases", [(W1, np.zeros(5)), (W2, np.zeros(4))]
    # Dyadic coefficients: the three lines meet exactly at (0.25, 0.25), in floats as in rationals.
    lines = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, -2.0], [0.5, 0.75]])
    yield "three-concurrent-lines", [(lines, np.array([-0.25, -0.25, 0.25, 0.1]))]
    fan = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0], [1.0, 2.0]])
    yield "five-lines-through-one-point", [(fan, -fan @ np.array([0.5, -0.25]))]
    dead = (W2.copy(), np.array([-50.0, -50.0, 0.1, 0.2]))  # two units never active: dead
    yield "dead-units", [(W1, b1), dead]
    corner = (np.array([[1.0, 1.0], [1.0, -1.0]]), np.array([-2.0, 0.0]))  # a line through the box corner
    yield "line-through-corner", [corner]
