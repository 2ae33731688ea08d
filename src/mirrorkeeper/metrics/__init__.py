"""Metrics (DESIGN §6): wire formats (``wire``, pure) and non-blocking emitters (``emit``)."""
