"""Real servers on 127.0.0.1 that answer like the CRMs we call (and like misbehaving ones)."""
