"""The resolution core: identifier grammar, values and their Handle JSON, the engine.

Imports nothing of the node's web or storage layers.
"""
