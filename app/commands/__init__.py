"""The ``idnode`` commands, one module per concern; ``app.cli`` puts them together."""
