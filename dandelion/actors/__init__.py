"""Resident-model actors: each holds one engine loaded once per process and serves it async.

They are plain classes (no Ray import) so they run in tests as they are; the app builder turns
each into a Ray Serve deployment with the resources from settings.
"""
