"""What the service tells the people who run it: metrics, traces and log lines."""
