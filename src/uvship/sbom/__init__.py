"""Software bills of materials: the CycloneDX document of an environment (cyclonedx), as
an OCI artifact (artifact) kept in layouts (layout) and attached in registries (referrers)."""
