"""The reference district (Shinan) as data, its loader, the simulator and the walkthrough: a client of the engine."""
