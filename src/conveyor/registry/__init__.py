"""The model registry: model packages, flavors, signatures, versions, aliases, lineage.

- :mod:`~conveyor.registry.package`, :mod:`~conveyor.registry.flavors`,
  :mod:`~conveyor.registry.signature`: the package format (a folder), nothing about the store.
- :mod:`~conveyor.registry.records`: the registry's records as frozen values.
- :mod:`~conveyor.registry.queries`: every read, in plain SQL that SQLAlchemy and sqlite3 run alike.
- :mod:`~conveyor.registry.versions`: the writes (:class:`Registry`, ``set_alias(conn, ...)``).
- :mod:`~conveyor.registry.stored`: the facade a user and a server call: register, resolve and
  load ``models:/`` URIs, with packages kept in the object cache.
- :mod:`~conveyor.registry.deployment`, :mod:`~conveyor.registry.deployments`: an environment's
  deployment record, and its writes (revision check, events and alias move in one transaction);
  :mod:`~conveyor.registry.readers` keeps the connections a server polls it on, without SQLAlchemy.
- :mod:`~conveyor.registry.errors`: the registry's exception types.
"""
