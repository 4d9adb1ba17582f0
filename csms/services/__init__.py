"""CSMS use cases. Build them all with `csms.services.container.build_services(settings)`."""

from csms.services.container import Services, build_services

__all__ = ["Services", "build_services"]
