"""The embedded synthetic world: generator (``generate``) and loader (``load_world``)."""

from obliviate.world.loader import World, load_world

__all__ = ["World", "load_world"]
