"""Who is calling and what they may do: tokens, JWTs, roles, rate limits, signed callbacks.

Nothing here knows FastAPI except `dependencies`; the rest is plain Python, unit-tested
on its own and shared with the CLI's `retailpulse token` commands.
"""
