"""A2A (Agent2Agent): the wire formats and the content mapping behind /a2a (aegra_server/api/a2a.py)."""
