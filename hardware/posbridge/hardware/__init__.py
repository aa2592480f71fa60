"""Device channels opened by URL, each with a real and a virtual backend (DESIGN.md, "Hardware channels")."""
