"""Keyed, counter-based hash that assigns sink units to sources, computed on the fly.

A source's sinks are the units whose hash of ``(hash_key, source_id, unit)`` falls
under ``p_mem``. The hash is SplitMix64 (Steele, Lea & Flood 2014; the seeding
generator of java.util.SplittableRandom and xoshiro): each source seeds its own
counter stream and unit ``u`` reads element ``u`` of it. Nothing is stored, so a
million sources cost no memory, and the same ids give the same sinks on every
machine (pure 64-bit integer arithmetic, no floating point).

torch has no unsigned 64-bit arithmetic, so the generator runs on int64 with
two's-complement wrap-around multiplication and emulated logical right shifts;
``reference_hash`` is the plain-Python version the tests compare against.
"""

from __future__ import annotations

import torch

_MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15   # SplitMix64's stream increment
_MUL1 = 0xBF58476D1CE4E5B9
_MUL2 = 0x94D049BB133111EB
_FRACTION_BITS = 53          # hash values are compared as 53-bit fractions of 1


def as_int64(value: int) -> int:
    """An unsigned 64-bit constant as the int64 with the same bits."""
    value &= _MASK64
    return value - (1 << 64) if value >= (1 << 63) else value


_GOLDEN_S, _MUL1_S, _MUL2_S = as_int64(GOLDEN_GAMMA), as_int64(_MUL1), as_int64(_MUL2)


# -- plain Python reference (unsigned 64-bit) ------------------------------------------
def mix_reference(z: int) -> int:
    """SplitMix64's output function on an unsigned 64-bit int (plain Python)."""
    z &= _MASK64
    z = ((z ^ (z >> 30)) * _MUL1) & _MASK64
    z = ((z ^ (z >> 27)) * _MUL2) & _MASK64
    return z ^ (z >> 31)


def source_seed_reference(hash_key: int, source_id: int) -> int:
    return mix_reference(mix_reference(hash_key + GOLDEN_GAMMA) ^ (source_id & _MASK64))


def reference_hash(hash_key: int, source_id: int, unit: int) -> int:
    """Unsigned 64-bit hash of ``(hash_key, source_id, unit)``: SplitMix64 output ``unit``
    of the stream seeded by the source."""
    return mix_reference(source_seed_reference(hash_key, source_id) + (unit + 1) * GOLDEN_GAMMA)


# -- torch version ---------------------------------------------------------------------
def _shr(z: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns (torch's >> is arithmetic)."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def _mix(z: torch.Tensor) -> torch.Tensor:
    z = (z ^ _shr(z, 30)) * _MUL1_S
    z = (z ^ _shr(z, 27)) * _MUL2_S
    return z ^ _shr(z, 31)


def source_seeds(hash_key: int, source_ids: torch.Tensor) -> torch.Tensor:
    """int64 seed of each source's counter stream."""
    key_seed = as_int64(mix_reference(hash_key + GOLDEN_GAMMA))
    return _mix(source_ids.to(torch.int64) ^ key_seed)


def unit_hashes(hash_key: int, source_ids: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """int64 bit patterns of the hash for every (source, unit): shape ``[len(sources), len(units)]``."""
    seeds = source_seeds(hash_key, source_ids.reshape(-1))
    counters = (units.to(torch.int64).reshape(-1) + 1) * _GOLDEN_S
    return _mix(seeds[:, None] + counters[None, :])


def membership_threshold(p_mem: float) -> int:
    return int(p_mem * (1 << _FRACTION_BITS))


def sink_membership(
    hash_key: int, source_ids: torch.Tensor, first_unit: int, n_units: int, p_mem: float
) -> torch.Tensor:
    """Bool ``[len(source_ids), n_units]``: which of units ``first_unit .. first_unit+n_units-1``
    belong to each source (hash, read as a 53-bit fraction, below ``p_mem``)."""
    units = torch.arange(first_unit, first_unit + n_units, device=source_ids.device, dtype=torch.int64)
    fraction = _shr(unit_hashes(hash_key, source_ids, units), 64 - _FRACTION_BITS)
    return fraction < membership_threshold(p_mem)


def reference_membership(hash_key: int, source_id: int, unit: int, p_mem: float) -> bool:
    return (reference_hash(hash_key, source_id, unit) >> (64 - _FRACTION_BITS)) < membership_threshold(p_mem)
