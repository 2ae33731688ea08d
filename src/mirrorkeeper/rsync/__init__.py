"""rsync: pure line splitting and parsing (``lines``, ``parse``, ``tally``, ``exitcodes``) and the
process runner (``process``), which is the only module here that does I/O."""
