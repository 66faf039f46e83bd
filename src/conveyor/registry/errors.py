"""The registry's errors, under :class:`~conveyor.foundation.errors.ConveyorError`.

    RegistryError            exit 1   a registry operation failed (a store row, a version)
    ├── ModelNotFound        exit 2   no such model, version or alias (says what exists)
    └── PackageError         exit 1   a folder that is not a model package, or a broken one
        └── FlavorError      exit 1   a flavor's library is missing or cannot load the artifact
            └── UntrustedModel  exit 2   an artifact that can run code, not vouched for

Wrong values in a manifest or a call (an unknown flavor, a bad name) stay
:class:`~conveyor.foundation.errors.ConfigError`; a package the object cache or a remote lacks
stays :class:`~conveyor.foundation.errors.DataError`.
"""

from __future__ import annotations

from conveyor.foundation.errors import ConveyorError


class RegistryError(ConveyorError):
    pass


class ModelNotFound(RegistryError):
    exit_code = 2


class PackageError(RegistryError):
    pass


class FlavorError(PackageError):
    pass


class UntrustedModel(FlavorError):
    exit_code = 2
