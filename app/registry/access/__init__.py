"""Access: enterprises and their prefixes, grants of restricted values, enterprise public keys."""
