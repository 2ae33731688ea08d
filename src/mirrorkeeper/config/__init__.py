"""Configuration: the TOML file at the edge (``load``), frozen values for the core (``spec``)."""

from .problems import ConfigError, Problem
from .spec import Config, GlobalSettings, MirrorSpec, Profile, SyncSettings

__all__ = ["Config", "ConfigError", "GlobalSettings", "MirrorSpec", "Problem", "Profile",
           "SyncSettings"]
