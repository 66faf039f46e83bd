"""Content-addressed data: the object store, trees, pointers, checkout, remotes and gc."""
