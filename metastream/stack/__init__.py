"""The local stack: an embedded Redis server and the consumer, for one machine."""
