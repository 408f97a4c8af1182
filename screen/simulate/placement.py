"""Where particles sit on a micrograph: spread out, crowded, clumped, or lined along a carbon edge."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class Placement:
    """Particle centres (Å) with flags; rows are particles."""

    x_A: np.ndarray
    y_A: np.ndarray
    in_aggregate: np.ndarray

    def __len__(self) -> int:
        return len(self.x_A)

    @staticmethod
    def empty() -> Placement:
        """A placement with no particles."""
        return Placement(np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool))

    def concat(self, other: Placement) -> Placement:
        """Both placements together."""
        return Placement(
            np.concatenate([self.x_A, other.x_A]),
            np.concatenate([self.y_A, other.y_A]),
            np.concatenate([self.in_aggregate, other.in_aggregate]),
        )

    def select(self, keep: np.ndarray) -> Placement:
        """The particles where ``keep`` is true."""
        return Placement(self.x_A[keep], self.y_A[keep], self.in_aggregate[keep])


def spread(
    n: int,
    extent_A: tuple[float, float],
    min_distance_A: float,
    rng: np.random.Generator,
    allowed=None,
) -> Placement:
    """Up to ``n`` centres, uniform over the frame, no two closer than ``min_distance_A``.

    Dart throwing: candidates are drawn in bulk and accepted in order. ``allowed(x, y)`` (vectorised,
    Å) can exclude regions. Fewer than ``n`` come back when the frame is full.
    """
    if n <= 0:
        return Placement.empty()
    width_A, height_A = extent_A
    candidates = rng.random((n * 6, 2)) * [width_A, height_A]
    if allowed is not None:
        candidates = candidates[allowed(candidates[:, 0], candidates[:, 1])]
    if min_distance_A <= 0:
        chosen = candidates[:n]
    else:
        chosen = _dart_throw(candidates, n, min_distance_A)
    return Placement(chosen[:, 0], chosen[:, 1], np.zeros(len(chosen), dtype=bool))


def _dart_throw(candidates: np.ndarray, n: int, min_distance_A: float) -> np.ndarray:
    cell = min_distance_A
    grid: dict[tuple[int, int], list[int]] = {}
    accepted: list[int] = []
    for i, (x, y) in enumerate(candidates):
        cx, cy = int(x // cell), int(y // cell)
        ok = True
        for gx in (cx - 1, cx, cx + 1):
            for gy in (cy - 1, cy, cy + 1):
                for j in grid.get((gx, gy), ()):
                    if (candidates[j, 0] - x) ** 2 + (candidates[j, 1] - y) ** 2 < cell**2:
                        ok = False
                        break
                if not ok:
                    break
            if not ok:
                break
        if ok:
            grid.setdefault((cx, cy), []).append(i)
            accepted.append(i)
            if len(accepted) == n:
                break
    return candidates[accepted].reshape(-1, 2)


def clumps(
    sizes: list[int],
    extent_A: tuple[float, float],
    diameter_A: float,
    rng: np.random.Generator,
) -> Placement:
    """Aggregates: tight, overlapping clusters of particles, one per entry of ``sizes``.

    Clump centres keep a clump's radius from the frame edge, so every clumped particle is seen.
    """
    xs, ys = [], []
    for size in sizes:
        margin = np.minimum(0.45 * diameter_A * np.sqrt(size) * 2.0, np.asarray(extent_A) / 4)
        centre = margin + rng.random(2) * (np.asarray(extent_A) - 2 * margin)
        spread_A = 0.45 * diameter_A * np.sqrt(size)
        points = centre + rng.normal(scale=spread_A, size=(size, 2))
        xs.append(points[:, 0])
        ys.append(points[:, 1])
    if not xs:
        return Placement.empty()
    x, y = np.concatenate(xs), np.concatenate(ys)
    inside = (x >= 0) & (y >= 0) & (x < extent_A[0]) & (y < extent_A[1])
    return Placement(x[inside], y[inside], np.ones(int(inside.sum()), dtype=bool))


def grown_clumps(
    sizes: list[int],
    extent_A: tuple[float, float],
    diameter_A: float,
    rng: np.random.Generator,
) -> Placement:
    """Aggregates grown in 3D, one per entry of ``sizes``: compact, several particles deep.

    Each particle sticks to a random earlier one of its clump, its centre 0.6-0.85 diameters
    from it in a random 3D direction (aggregated protein interpenetrates); the clump is then
    projected. Unlike `clumps` (a loose 2D scatter), the projection piles particles on one
    another: a dark, dense clump with the particles' own texture, as real aggregates look.
    Clump centres keep the clump's projected radius from the frame edge where the frame allows.
    """
    xs, ys = [], []
    extent = np.asarray(extent_A, dtype=float)
    for size in sizes:
        points = np.zeros((max(int(size), 1), 3))
        for k in range(1, len(points)):
            direction = rng.normal(size=3)
            direction /= max(float(np.linalg.norm(direction)), 1e-9)
            anchor = points[int(rng.integers(0, k))]
            points[k] = anchor + direction * rng.uniform(0.6, 0.85) * diameter_A
        flat = points[:, :2] - points[:, :2].mean(axis=0)
        radius_A = float(np.hypot(flat[:, 0], flat[:, 1]).max()) + diameter_A / 2
        margin = np.minimum(radius_A, extent / 4)
        centre = margin + rng.random(2) * (extent - 2 * margin)
        xs.append(centre[0] + flat[:, 0])
        ys.append(centre[1] + flat[:, 1])
    if not xs:
        return Placement.empty()
    x, y = np.concatenate(xs), np.concatenate(ys)
    inside = (x >= 0) & (y >= 0) & (x < extent[0]) & (y < extent[1])
    return Placement(x[inside], y[inside], np.ones(int(inside.sum()), dtype=bool))


def along_edge(
    n: int,
    edge_points_A: np.ndarray,
    normals: np.ndarray,
    diameter_A: float,
    extent_A: tuple[float, float],
    rng: np.random.Generator,
) -> Placement:
    """``n`` particles lined up just off a carbon edge (on the ice side), as particles gather there."""
    if n <= 0 or len(edge_points_A) == 0:
        return Placement.empty()
    pick = rng.integers(0, len(edge_points_A), size=n * 3)
    offset = rng.uniform(0.5, 1.3, size=(n * 3, 1)) * diameter_A
    points = edge_points_A[pick] - normals[pick] * offset
    points += rng.normal(scale=0.1 * diameter_A, size=points.shape)
    inside = (points[:, 0] >= 0) & (points[:, 1] >= 0)
    inside &= (points[:, 0] < extent_A[0]) & (points[:, 1] < extent_A[1])
    chosen = _dart_throw(points[inside], n, 0.85 * diameter_A)
    return Placement(chosen[:, 0], chosen[:, 1], np.zeros(len(chosen), dtype=bool))


def nearest_neighbour_distance_A(x_A: np.ndarray, y_A: np.ndarray) -> np.ndarray:
    """Distance (Å) from each particle to its nearest neighbour (inf when alone)."""
    if len(x_A) < 2:
        return np.full(len(x_A), np.inf)
    distance, _ = cKDTree(np.stack([x_A, y_A], axis=1)).query(np.stack([x_A, y_A], axis=1), k=2)
    return distance[:, 1]
