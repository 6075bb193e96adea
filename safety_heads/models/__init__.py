"""Models: loading a chat model as a TransformerLens bridge, the model cache, the chat
formats, and the interface the method needs from a model (:mod:`.interface`).

The floor every other stage builds on; it imports nothing from them.
"""
