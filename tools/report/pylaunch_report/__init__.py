"""pylaunch-report: loads --pymonitor records into SQLite and writes one HTML report."""
__version__ = "0.1.0"
