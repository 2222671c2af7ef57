"""The reliability suite: crash points, kill -9, concurrency, corruption, bad input, permissions."""
