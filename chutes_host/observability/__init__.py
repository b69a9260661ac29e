"""What the host tells about itself: metrics, logs, live feeds, each chute's docs pages."""
