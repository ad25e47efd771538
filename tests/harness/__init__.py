"""Test harness: a real livekit-server, real LiveKit Agents sessions, raw peers.

See README.md in this directory.
"""
