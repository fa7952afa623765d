"""Where an event is stored: the durable SQLite event log, and small files written whole."""
