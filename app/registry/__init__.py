"""Registry services: enterprises, identifiers, operator credentials. They never commit."""
