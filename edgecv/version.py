"""edgecv's version: one place, read by the package face, pyproject.toml and every record that
names the tool (manifests, results, eval files), so none of them imports the package face."""

__version__ = "0.1.0"
