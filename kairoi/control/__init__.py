"""The control bus: an operator's requests on a ZeroMQ socket, in msgpack (docs/control-bus.md)."""
