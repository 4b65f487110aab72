"""The preset sweep files (YAML), shipped with the package: `rlvr sweep quickstart` finds them from any folder."""
