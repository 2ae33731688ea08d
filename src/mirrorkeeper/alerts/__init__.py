"""Alerts (I/O): findings → stored alerts → external plugins. See docs/alerting.md."""
